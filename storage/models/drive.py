"""The v2-drive dialect: its keys, folders and files, search documents, OAuth
clients, codes and tokens, profiles (issue 20; migration 0014)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from storage.models.core import Account


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
