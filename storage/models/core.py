"""The cluster's own tables: nodes and layouts, accounts and keys, buckets,
object versions and multipart uploads, chunk references, sessions, SFTP
logins, login failures and the events outbox."""

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
    # The client of the request that made it (the audit log's ip_address and
    # user_agent); NULL for changes no client request made (workers, purges).
    ip_address = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=512, null=True)

    class Meta:
        table = "events"
        # An account's events in order (audit log), and the latest of a type
        # (quota.exceeded is recorded at most once an hour).
        indexes = (("account_id", "id"), ("account_id", "type", "id"))
