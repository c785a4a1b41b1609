"""Self-service signup: an account, its first S3 key pair and a default bucket.

Bucket names are global, so each account's default bucket gets a name of its
own: ``default-`` followed by ten lowercase base32 characters derived from the
account id (and, in the astronomically unlikely event that is taken, random
ones).  An account's default bucket is its oldest bucket; the REST API uses it
when a request names no bucket.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from storage import errors
from storage.accounts import AccountInfo, AccountService, Credentials
from storage.buckets import BucketInfo, BucketService


@dataclass(frozen=True)
class SignupResult:
    """What a new user receives once."""

    account: AccountInfo
    credentials: Credentials
    bucket: BucketInfo


def default_bucket_name(account_id: str, salt: str = "") -> str:
    """A valid, globally unique-looking S3 bucket name for an account."""
    digest = hashlib.sha256(f"{account_id}:{salt}".encode()).digest()
    return "default-" + base64.b32encode(digest).decode().lower()[:10]


async def signup(
    accounts: AccountService, buckets: BucketService, email: str, password: str | None,
    *, region: str = "", quota_bytes: int | None = None,
) -> SignupResult:
    """Create the account, its first access key and its default bucket.

    ``password`` is None for accounts an operator creates: they use keys only
    until a password is set.
    """
    account = await accounts.create_account(email, password, quota_bytes=quota_bytes)
    creds = await accounts.create_access_key(account.id, "first key")
    salt = ""
    for _ in range(5):
        try:
            bucket = await buckets.create(account.id, default_bucket_name(account.id, salt), region)
            break
        except errors.BucketAlreadyExists:
            salt = secrets.token_hex(4)
    else:  # pragma: no cover - five collisions of 50-bit names
        raise errors.StorageError("could not allocate a default bucket name")
    return SignupResult(account=account, credentials=creds, bucket=bucket)


async def default_bucket(buckets: BucketService, account_id: str) -> BucketInfo:
    """The account's default bucket (its oldest); NoSuchBucket if it has none."""
    owned = await buckets.list_for(account_id)
    if not owned:
        raise errors.NoSuchBucket("This account has no bucket.")
    return min(owned, key=lambda b: (b.created_at, b.id))
