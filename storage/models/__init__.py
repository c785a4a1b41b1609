"""Tortoise models of the shared metadata database.

The database is the cluster's source of truth for everything but chunk bytes.
Schema changes go through Tortoise migrations in :mod:`storage.migrations`
(``make migrations`` after editing a model).

One module per feature; every model is re-exported here, where Tortoise
(``models: ["storage.models"]``) and the code find them.
"""

from storage.models.core import (
    AccessKey,
    Account,
    Bucket,
    ChunkRef,
    ClusterLayout,
    Event,
    LoginFailure,
    MultipartPart,
    MultipartUpload,
    Node,
    ObjectVersion,
    PendingChunk,
    Session,
    SftpCredential,
    SftpPublicKey,
)
from storage.models.delivery import OutboxCursor, VersionPolicy, Webhook, WebhookDelivery
from storage.models.dialects import ApiKey, ImportTask, RateWindow
from storage.models.drive import (
    DriveFile,
    DriveFolder,
    DriveKey,
    DriveProfile,
    DriveSearchDoc,
    OAuthClient,
    OAuthCode,
    OAuthToken,
)
from storage.models.sharing import ImageVariant, Share
from storage.models.teams import (
    BillingCustomer,
    StripeEvent,
    Team,
    TeamBucket,
    TeamInvite,
    TeamMember,
)

__all__ = [
    "AccessKey",
    "Account",
    "ApiKey",
    "BillingCustomer",
    "Bucket",
    "ChunkRef",
    "ClusterLayout",
    "DriveFile",
    "DriveFolder",
    "DriveKey",
    "DriveProfile",
    "DriveSearchDoc",
    "Event",
    "ImageVariant",
    "ImportTask",
    "LoginFailure",
    "MultipartPart",
    "MultipartUpload",
    "Node",
    "OAuthClient",
    "OAuthCode",
    "OAuthToken",
    "ObjectVersion",
    "OutboxCursor",
    "PendingChunk",
    "RateWindow",
    "Session",
    "SftpCredential",
    "SftpPublicKey",
    "Share",
    "StripeEvent",
    "Team",
    "TeamBucket",
    "TeamInvite",
    "TeamMember",
    "VersionPolicy",
    "Webhook",
    "WebhookDelivery",
]
