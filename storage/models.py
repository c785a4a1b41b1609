"""Tortoise models of the shared metadata database.

The database is the cluster's source of truth for everything but chunk bytes.
Schema changes go through Tortoise migrations in :mod:`storage.migrations`
(``cloudstorage db makemigrations`` after editing this file).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Node(Model):
    """A cluster member: registers itself at start and heartbeats."""

    id = fields.CharField(primary_key=True, max_length=64)
    zone = fields.CharField(max_length=64)
    capacity = fields.BigIntField()
    transport_addr = fields.CharField(max_length=255)
    web_addr = fields.CharField(max_length=255, default="")
    s3_addr = fields.CharField(max_length=255, default="")
    sftp_addr = fields.CharField(max_length=255, default="")
    started_at = fields.DatetimeField()
    last_heartbeat = fields.DatetimeField()

    class Meta:
        table = "nodes"


class ClusterLayout(Model):
    """One version of the partition -> nodes assignment (staged or applied)."""

    version = fields.IntField(primary_key=True)
    state = fields.CharField(max_length=16)  # "staged" | "applied"
    layout = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "cluster_layouts"


class Account(Model):
    """A tenant: owns buckets, keys, usage and a quota."""

    id = fields.CharField(primary_key=True, max_length=40)
    email = fields.CharField(max_length=320, unique=True)
    password_hash = fields.CharField(max_length=255, null=True)
    plan = fields.CharField(max_length=32, default="free")
    quota_bytes = fields.BigIntField()
    used_bytes = fields.BigIntField(default=0)
    object_count = fields.BigIntField(default=0)
    is_admin = fields.BooleanField(default=False)
    status = fields.CharField(max_length=16, default="active")  # active | suspended
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "accounts"


class AccessKey(Model):
    """An S3 key pair.  SigV4 needs the secret itself, so it is stored
    encrypted with the cluster key rather than hashed."""

    access_key = fields.CharField(primary_key=True, max_length=32)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="access_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128, default="")
    secret_enc = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "access_keys"


class Bucket(Model):
    """A bucket. Names are global across the cluster, as in S3."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=63, unique=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="buckets", on_delete=fields.RESTRICT
    )
    region = fields.CharField(max_length=32, default="")
    # "" = never versioned, "Enabled", "Suspended" -- S3's three states.
    versioning = fields.CharField(max_length=16, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    # Bucket tags {key: value}; NULL or {} = no tag set (S3's NoSuchTagSet).
    tags = fields.JSONField(null=True)
    # The CORS rules as stored by PutBucketCors; NULL = no CORS configuration.
    cors = fields.JSONField(null=True)

    class Meta:
        table = "buckets"


class ObjectVersion(Model):
    """One version of an object (or a delete marker).

    ``is_latest`` is True for the current version and NULL otherwise: the unique
    index on (bucket, key, is_latest) then lets the database itself refuse two
    concurrent writers that both try to become the latest version, on SQLite
    and PostgreSQL alike (NULLs never collide in a unique index).
    """

    id = fields.BigIntField(primary_key=True)
    bucket: fields.ForeignKeyRelation[Bucket] = fields.ForeignKeyField(
        "models.Bucket", related_name="versions", on_delete=fields.CASCADE
    )
    key = fields.TextField()
    version_id = fields.CharField(max_length=40)
    is_latest = fields.BooleanField(null=True)
    is_delete_marker = fields.BooleanField(default=False)
    size = fields.BigIntField(default=0)
    etag = fields.CharField(max_length=80, default="")
    # Unbounded: S3 limits only the request head (listen.max_header_bytes).
    content_type = fields.TextField(default="")
    user_metadata = fields.JSONField(default=dict)
    # Content-Encoding, Cache-Control, Content-Disposition, ... as sent.
    headers = fields.JSONField(default=dict)
    checksums = fields.JSONField(default=dict)
    # [[sha256_hex, size], ...] in order; empty when the data is inline.
    chunks = fields.JSONField(default=list)
    inline_data = fields.BinaryField(null=True)
    created_at = fields.DatetimeField()
    # Sizes of the parts a multipart upload was completed from, in order
    # (GetObject ?partNumber=N); NULL or [] for an object stored in one piece.
    # Nullable so that adding the column needs no rewrite of existing rows.
    part_sizes = fields.JSONField(null=True)
    # Object tags {key: value}; NULL or {} = none.
    tags = fields.JSONField(null=True)
    # The multipart upload this version completed (NULL otherwise): a
    # retried CompleteMultipartUpload finds its earlier success by it.
    upload_id = fields.CharField(max_length=64, null=True)
    # Time Machine (issue 17): when a replaced version of a bucket without S3
    # versioning became hidden history (NULL = a version S3 sees), and the
    # version's number among the key's versions (1, 2, ...).
    history_at = fields.DatetimeField(null=True)
    version_number = fields.IntField(null=True)

    class Meta:
        table = "object_versions"
        unique_together = (("bucket", "key", "is_latest"), ("bucket", "key", "version_id"))


class MultipartUpload(Model):
    """An S3 multipart upload in progress."""

    upload_id = fields.CharField(primary_key=True, max_length=64)
    bucket: fields.ForeignKeyRelation[Bucket] = fields.ForeignKeyField(
        "models.Bucket", related_name="uploads", on_delete=fields.CASCADE
    )
    key = fields.TextField()
    # Unbounded: S3 limits only the request head (listen.max_header_bytes).
    content_type = fields.TextField(default="")
    user_metadata = fields.JSONField(default=dict)
    headers = fields.JSONField(default=dict)
    # "<algorithm>:<COMPOSITE|FULL_OBJECT>", e.g. "crc64nvme:FULL_OBJECT" (21).
    checksum_algorithm = fields.CharField(max_length=32, default="")
    created_at = fields.DatetimeField()
    # x-amz-tagging of CreateMultipartUpload, applied to the object at completion.
    tags = fields.JSONField(null=True)

    class Meta:
        table = "multipart_uploads"


class MultipartPart(Model):
    """One uploaded part. Re-uploading a part number replaces it."""

    id = fields.BigIntField(primary_key=True)
    upload: fields.ForeignKeyRelation[MultipartUpload] = fields.ForeignKeyField(
        "models.MultipartUpload", related_name="parts", on_delete=fields.CASCADE
    )
    part_number = fields.IntField()
    size = fields.BigIntField()
    etag = fields.CharField(max_length=80)
    checksums = fields.JSONField(default=dict)
    chunks = fields.JSONField(default=list)
    created_at = fields.DatetimeField()

    class Meta:
        table = "multipart_parts"
        unique_together = (("upload", "part_number"),)


class ChunkRef(Model):
    """How many committed versions and parts reference a chunk.

    A chunk whose count stayed at zero for the GC grace period may be
    deleted from every node.
    """

    chunk_id = fields.CharField(primary_key=True, max_length=64)
    size = fields.BigIntField()
    refcount = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "chunk_refs"
        indexes = (("refcount", "updated_at"),)


class PendingChunk(Model):
    """A chunk stored by an upload still streaming, not yet referenced.

    Garbage collection keeps a chunk with a row whose ``expires_at`` (unix
    time) is still ahead.  Only uploads that outlast a fraction of the GC
    grace period write rows (younger chunk files are protected by their
    age), refreshing them while they stream; the commit removes them, and
    rows of uploads that died simply expire.
    """

    id = fields.BigIntField(primary_key=True)
    chunk_id = fields.CharField(max_length=64, db_index=True)
    token = fields.CharField(max_length=32)
    expires_at = fields.FloatField()

    class Meta:
        table = "pending_chunks"
        unique_together = (("token", "chunk_id"),)


class Session(Model):
    """A dashboard login.  Only the SHA-256 of the cookie's token is stored, so
    a leaked database does not hand out live sessions."""

    token_hash = fields.CharField(primary_key=True, max_length=64)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "sessions"


class SftpCredential(Model):
    """An account's opt-in SFTP login: the username is the account id and the
    password (separate from the dashboard one) is scrypt-hashed."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="sftp", on_delete=fields.CASCADE, primary_key=True
    )
    password_hash = fields.CharField(max_length=255)
    enabled = fields.BooleanField(default=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "sftp_credentials"


class SftpPublicKey(Model):
    """An SSH public key allowed to log in as the account over SFTP."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="sftp_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128, default="")
    # The key in OpenSSH one-line form ("ssh-ed25519 AAAA..."), without comment.
    public_key = fields.TextField()
    fingerprint = fields.CharField(max_length=128)
    created_at = fields.DatetimeField()

    class Meta:
        table = "sftp_public_keys"
        unique_together = (("account", "fingerprint"),)


class LoginFailure(Model):
    """One failed (or in-flight) dashboard login, counted cluster-wide.

    ``subject`` is the SHA-256 of what is limited (``login:<email>``), so the
    table holds no addresses; rows older than the window are deleted as new
    ones arrive."""

    id = fields.BigIntField(primary_key=True)
    subject = fields.CharField(max_length=64)
    at = fields.DatetimeField()

    class Meta:
        table = "login_failures"
        indexes = (("subject", "at"),)


class Event(Model):
    """One committed change: the outbox that webhook delivery, the audit log
    and search read (see :mod:`storage.events`).  Written in the transaction
    of the change itself, so it exists exactly when the change does."""

    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=32)
    # The account the event belongs to (a bucket's owner), not a foreign key:
    # the record of a change outlives the account that made it.
    account_id = fields.CharField(max_length=40)
    bucket = fields.CharField(max_length=63, null=True)
    key = fields.TextField(null=True)
    data = fields.JSONField()
    # The surface that caused it ("s3", "rest", "sftp", ...) and who did.
    origin = fields.CharField(max_length=16, default="")
    actor = fields.CharField(max_length=40, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "events"
        # An account's events in order (audit log), and the latest of a type
        # (quota.exceeded is recorded at most once an hour).
        indexes = (("account_id", "id"), ("account_id", "type", "id"))


# -- shares and image transforms (issue 16; migration 0010) ----------------------------


class Share(Model):
    """A public link ``/s/{code}`` to one object version (see storage/shares.py).

    The bucket is a plain id, not a foreign key: deleting the bucket leaves the
    share dead (410), never pointing at a new bucket of the same name.
    """

    id = fields.CharField(primary_key=True, max_length=40)  # "share_<random>"
    code = fields.CharField(max_length=32, unique=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="shares", on_delete=fields.CASCADE
    )
    bucket_id = fields.BigIntField()
    bucket = fields.CharField(max_length=63)
    key = fields.TextField()
    # The version shared: a later overwrite or delete ends the share.
    version_id = fields.CharField(max_length=40)
    etag = fields.CharField(max_length=80)
    file_name = fields.CharField(max_length=255)
    file_size = fields.BigIntField()
    content_type = fields.TextField(default="")
    password_hash = fields.CharField(max_length=255, null=True)
    expires_at = fields.DatetimeField(null=True)
    max_downloads = fields.BigIntField(null=True)
    downloads = fields.BigIntField(default=0)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "shares"
        indexes = (("account_id", "created_at"),)


class ImageVariant(Model):
    """A cached image-transform result, its bytes stored as chunks.

    ``id`` is the SHA-256 of the source's identity (bucket id, key, version
    and ETag) and the canonical parameters with the output format; each chunk
    listed holds one reference in ``chunk_refs`` until the row is evicted.
    """

    id = fields.CharField(primary_key=True, max_length=64)
    bucket_id = fields.BigIntField()
    size = fields.BigIntField()
    content_type = fields.CharField(max_length=32)
    width = fields.IntField()
    height = fields.IntField()
    chunks = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    # Unix time of the last hit (refreshed at most once a minute): eviction
    # drops the least recently used first.
    used_at = fields.FloatField(db_index=True)

    class Meta:
        table = "image_variants"


# -- webhooks and Time Machine versions (issue 17; migration 0011) ---------------------


class Webhook(Model):
    """An endpoint that receives an account's events (see storage/webhooks.py).

    The signing secret is needed in clear to compute HMACs, so it is stored
    sealed with the cluster key (bound to the webhook id), never hashed.
    """

    id = fields.CharField(primary_key=True, max_length=40)  # "wh_<random>"
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="webhooks", on_delete=fields.CASCADE
    )
    url = fields.TextField()
    events = fields.JSONField()  # ["object.created", ...]
    secret_enc = fields.TextField()
    active = fields.BooleanField(default=True)
    # Consecutive failed attempts; at webhooks.disable_after_failures the
    # webhook is disabled (reason in disabled_reason) until re-enabled.
    failures = fields.IntField(default=0)
    disabled_reason = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "webhooks"


class WebhookDelivery(Model):
    """One event to one webhook: the delivery queue and, once finished, the log.

    Unique per (webhook, event), so fanning an event out twice (two nodes,
    a retried pass) never sends it twice.  A node claims a row by setting
    ``lease_until``/``lease_owner`` with a conditional UPDATE; a node killed
    mid-delivery leaves a lease that simply expires.
    """

    id = fields.BigIntField(primary_key=True)
    webhook: fields.ForeignKeyRelation[Webhook] = fields.ForeignKeyField(
        "models.Webhook", related_name="deliveries", on_delete=fields.CASCADE
    )
    event_id = fields.BigIntField()
    event_type = fields.CharField(max_length=32)
    # pending | succeeded | failed (retries exhausted) | skipped (webhook off)
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(max_length=64, default="")
    response_code = fields.IntField(null=True)
    duration_ms = fields.IntField(null=True)
    # A small prefix of the answer's body (or the error): never more.
    response_body = fields.TextField(default="")
    error = fields.TextField(default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "webhook_deliveries"
        unique_together = (("webhook", "event_id"),)
        indexes = (("status", "next_attempt_at"), ("webhook", "id"))


class OutboxCursor(Model):
    """How far a consumer of the events outbox has read (all ids <= event_id)."""

    name = fields.CharField(primary_key=True, max_length=32)
    event_id = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "outbox_cursors"


class VersionPolicy(Model):
    """An account's own Time Machine retention (else the [versions] defaults)."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="version_policy", on_delete=fields.CASCADE,
        primary_key=True,
    )
    max_versions = fields.IntField()
    max_age_days = fields.IntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "version_policies"


# -- teams and billing (issue 18; migration 0012) ---------------------------------------


class Team(Model):
    """A group of accounts sharing some of its members' buckets."""

    id = fields.CharField(primary_key=True, max_length=40)  # "team_<random>"
    name = fields.CharField(max_length=128)
    created_by = fields.CharField(max_length=40)
    created_at = fields.DatetimeField()

    class Meta:
        table = "teams"


class TeamMember(Model):
    """An account's role (admin, write, read) in a team."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "models.Team", related_name="members", on_delete=fields.CASCADE
    )
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="team_memberships", on_delete=fields.CASCADE,
        db_index=True,  # role lookups go by (account, bucket)
    )
    role = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_members"
        unique_together = (("team", "account"),)


class TeamBucket(Model):
    """A bucket its owner shared with a team (deleting the bucket unshares it)."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "models.Team", related_name="team_buckets", on_delete=fields.CASCADE
    )
    bucket: fields.ForeignKeyRelation[Bucket] = fields.ForeignKeyField(
        "models.Bucket", related_name="teams", on_delete=fields.CASCADE, db_index=True
    )
    created_at = fields.DatetimeField()

    class Meta:
        table = "team_buckets"
        unique_together = (("team", "bucket"),)


class TeamInvite(Model):
    """A pending invitation: single use, expiring, bound to one email.  Only
    the SHA-256 of its token is stored."""

    id = fields.CharField(primary_key=True, max_length=40)  # "inv_<random>"
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "models.Team", related_name="invites", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=320)
    role = fields.CharField(max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    invited_by = fields.CharField(max_length=40)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    accepted_by = fields.CharField(max_length=40, null=True)

    class Meta:
        table = "team_invites"


class BillingCustomer(Model):
    """An account's Stripe customer and the subscription state Stripe reported."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="billing", on_delete=fields.CASCADE, primary_key=True
    )
    customer_id = fields.CharField(max_length=255, unique=True)
    subscription_id = fields.CharField(max_length=255, null=True)
    plan = fields.CharField(max_length=32, default="free")
    status = fields.CharField(max_length=32, default="")
    current_period_end = fields.DatetimeField(null=True)
    # A downgrade keeps the plan already paid for until the period ends.
    kept_plan = fields.CharField(max_length=32, default="")
    kept_until = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "billing_customers"


class StripeEvent(Model):
    """A Stripe webhook event already applied: its id is inserted in the
    transaction that applies it, so a second delivery (or a second node)
    cannot apply it again."""

    id = fields.CharField(primary_key=True, max_length=255)
    type = fields.CharField(max_length=64)
    processed_at = fields.DatetimeField()

    class Meta:
        table = "stripe_events"


# -- REST dialects v1-pro and v2-objects (issue 19; migration 0013) ---------------------


class ApiKey(Model):
    """A ``csb_live_`` Bearer key of the v1-pro API (seed 002).

    Only the SHA-256 of the key is stored (the key holds 256 random bits, so a
    plain hash cannot be brute-forced); ``key_prefix`` and ``key_last4`` are
    what the owner sees to recognise it.  Revoking deletes the row."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="api_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128, default="")
    key_hash = fields.CharField(max_length=64, unique=True)
    key_prefix = fields.CharField(max_length=32)
    key_last4 = fields.CharField(max_length=4)
    scopes = fields.JSONField()
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class RateWindow(Model):
    """Requests of one subject (an API key, an account) in one time slot,
    counted in the shared database so a limit holds for the whole cluster
    (see :mod:`storage.rate_windows`)."""

    id = fields.BigIntField(primary_key=True)
    subject = fields.CharField(max_length=64)
    slot = fields.BigIntField()
    count = fields.IntField(default=0)
    # Unix second after which the row counts for no window (pruned).
    expires = fields.BigIntField(db_index=True)

    class Meta:
        table = "rate_windows"
        unique_together = (("subject", "slot"),)


class ImportTask(Model):
    """An asynchronous import of the v1-pro API: a row any node's import
    worker may claim while its lease has run out (see :mod:`storage.imports`)."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="import_tasks", on_delete=fields.CASCADE
    )
    type = fields.CharField(max_length=8)  # file | video
    url = fields.TextField()
    bucket = fields.CharField(max_length=63)
    key = fields.TextField()
    # running | completed | failed | cancelled
    state = fields.CharField(max_length=16, default="running")
    bytes_done = fields.BigIntField(default=0)
    total_bytes = fields.BigIntField(null=True)
    error = fields.TextField(default="")
    attempts = fields.IntField(default=0)
    lease_owner = fields.CharField(max_length=64, default="")
    lease_until = fields.FloatField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "import_tasks"
        indexes = (("state", "lease_until"),)


# -- REST dialect v2-drive (issue 20; migration 0014) --


class DriveKey(Model):
    """A ``cs_live_sk_`` / ``cs_test_sk_`` / ``cs_live_pk_`` key of v2-drive (seed 004).

    Only the SHA-256 is stored (the key holds ~190 random bits); ``kind`` is
    ``sk`` (secret, scoped) or ``pk`` (public: read-only), ``env`` is ``live``
    or ``test`` (the sandbox folder only).  Revoking deletes the row."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="drive_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128, default="")
    kind = fields.CharField(max_length=4)
    env = fields.CharField(max_length=8)
    key_hash = fields.CharField(max_length=64, unique=True)
    key_prefix = fields.CharField(max_length=32)
    key_last4 = fields.CharField(max_length=4)
    scopes = fields.JSONField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "drive_keys"


class DriveFolder(Model):
    """The id of a folder (a key prefix ending in ``/``) of a bucket, given
    the first time v2-drive sees it (see storage/drive.py)."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="drive_folders", on_delete=fields.CASCADE
    )
    bucket = fields.CharField(max_length=63)
    path = fields.TextField()
    # SHA-256 of the path: a unique index on a fixed-width column on every backend.
    path_hash = fields.CharField(max_length=64)
    color = fields.CharField(max_length=16, default="")
    created_at = fields.DatetimeField()
    trashed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "drive_folders"
        unique_together = (("bucket", "path_hash"),)


class DriveFile(Model):
    """The id of a file (an object key), its custom metadata, its pending
    presigned upload and its trash state (see storage/drive.py)."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="drive_files", on_delete=fields.CASCADE
    )
    bucket = fields.CharField(max_length=63)
    key = fields.TextField()
    key_hash = fields.CharField(max_length=64)
    # pending_upload | active | trashed
    status = fields.CharField(max_length=16, default="active")
    mime_type = fields.TextField(default="")
    expected_size = fields.BigIntField(null=True)
    checksum_sha256 = fields.CharField(max_length=64, default="")
    upload_expires_at = fields.DatetimeField(null=True)
    # {template: {field: value}}
    metadata = fields.JSONField(default=dict)
    # A trashed file's version as it was (chunks, size, type, metadata): its
    # chunks keep one reference of their own until restore or purge, and the
    # key itself is free (see storage/drive_trash.py).
    trash = fields.JSONField(null=True)
    trashed_at = fields.DatetimeField(null=True)
    # The folder id a file was trashed with ("" when trashed alone).
    trashed_with = fields.CharField(max_length=40, default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "drive_files"
        unique_together = (("bucket", "key_hash"),)
        indexes = (("status", "trashed_at"),)


class DriveSearchDoc(Model):
    """One file or folder in the v2-drive search index (see storage/search.py).

    The terms themselves live beside it in the database's own text index,
    keyed by this row's id: the FTS5 table ``drive_search`` on SQLite, the
    ``tsv`` tsvector column (GIN-indexed) of this table on PostgreSQL; both
    are made by migration 0014, not by Tortoise."""

    id = fields.BigIntField(primary_key=True)
    # SHA-256 of "bucket\nkey": one row per key, whatever its length.
    doc_key = fields.CharField(max_length=64, unique=True)
    account_id = fields.CharField(max_length=40)
    bucket = fields.CharField(max_length=63)
    key = fields.TextField()
    kind = fields.CharField(max_length=8)  # file | folder
    mime = fields.TextField(default="")
    updated_at = fields.DatetimeField()

    class Meta:
        table = "drive_search_docs"
        indexes = (("bucket", "kind"),)


class OAuthClient(Model):
    """A third-party app registered for v2-drive OAuth 2.0 (see storage/oauth.py).

    Confidential clients have a secret (only its SHA-256 is kept); public
    ones (no secret) rely on PKCE alone, which every client must use."""

    id = fields.CharField(primary_key=True, max_length=40)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="oauth_clients", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128)
    redirect_uris = fields.JSONField()
    scopes = fields.JSONField()
    secret_hash = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "oauth_clients"


class OAuthCode(Model):
    """An authorization code: single use, short-lived, bound to its PKCE challenge."""

    code_hash = fields.CharField(primary_key=True, max_length=64)
    client_id = fields.CharField(max_length=40)
    account_id = fields.CharField(max_length=40)
    redirect_uri = fields.TextField()
    scopes = fields.JSONField()
    challenge = fields.CharField(max_length=128)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "oauth_codes"


class OAuthToken(Model):
    """An access token and its refresh token (hashes only); revoking either
    revokes both, refreshing replaces the row's pair."""

    id = fields.CharField(primary_key=True, max_length=40)
    access_hash = fields.CharField(max_length=64, unique=True)
    refresh_hash = fields.CharField(max_length=64, unique=True)
    client_id = fields.CharField(max_length=40, db_index=True)
    account_id = fields.CharField(max_length=40)
    scopes = fields.JSONField()
    expires_at = fields.DatetimeField()
    refresh_expires_at = fields.DatetimeField()
    revoked = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "oauth_tokens"


class DriveProfile(Model):
    """What v2-drive keeps of a user beyond the account: the display name."""

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="drive_profile", on_delete=fields.CASCADE,
        primary_key=True
    )
    display_name = fields.CharField(max_length=128)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "drive_profiles"
