"""Operator-side set-up: the first start of a cluster, accounts from the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from config import ConfigError, Settings, parse_size
from storage.accounts import AccountService, Credentials
from storage.bridge import AsyncioBridge
from storage.buckets import BucketService
from storage.crypto import SecretBox
from storage.db import Database
from storage.errors import AccountExists, BucketAlreadyExists, BucketAlreadyOwnedByYou
from storage.signup import signup


@dataclass(frozen=True)
class FirstCredentials:
    """The first admin's login material, printed for the operator."""

    email: str
    access_key: str
    secret_key: str
    created: bool


@contextlib.asynccontextmanager
async def open_accounts(settings: Settings) -> AsyncIterator[tuple[Database, AccountService]]:
    """A short-lived database connection and account service for a CLI command."""
    bridge = AsyncioBridge("cli-asyncio")
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    try:
        await db.open()
        yield db, AccountService(
            db, SecretBox(settings.cluster_secret()),
            default_quota=settings.accounts.default_quota,
            max_access_keys=settings.accounts.max_access_keys,
        )
    finally:
        await db.close()
        bridge.stop()


async def bootstrap(settings: Settings, admin_email: str = "admin@localhost") -> FirstCredentials:
    """Idempotently prepare the cluster and return the first admin's key pair.

    Creates the cluster secret file if configured and missing, brings the
    schema up to date, and creates the first admin account, its first access
    key and a ``default`` bucket unless they exist already.
    """
    settings.ensure_cluster_secret()
    async with open_accounts(settings) as (db, accounts):
        admin = await accounts.first_admin()
        created = admin is None
        if admin is None:
            admin = await accounts.create_account(admin_email, is_admin=True)
        keys = await accounts.list_access_keys(admin.id)
        if keys:
            access_key = keys[0].access_key
            secret = await accounts.secret_of(access_key)
        else:
            creds = await accounts.create_access_key(admin.id, "first key")
            access_key, secret = creds.access_key, creds.secret_key
        with contextlib.suppress(BucketAlreadyOwnedByYou, BucketAlreadyExists):
            await BucketService(db).create(admin.id, "default", settings.cluster.region)
        return FirstCredentials(admin.email, access_key, secret, created)


async def create_account(
    settings: Settings, email: str, quota: str | None = None
) -> Credentials:
    """Create an account as signup does (first key pair, default bucket) and
    return the key pair."""
    async with open_accounts(settings) as (db, accounts):
        buckets = BucketService(db, max_buckets=settings.accounts.max_buckets)
        try:
            result = await signup(
                accounts, buckets, email, None, region=settings.cluster.region,
                quota_bytes=parse_size(quota) if quota else None,
            )
        except (AccountExists, ValueError) as exc:
            raise ConfigError(f"account {email}: {exc}") from None
        return result.credentials


def format_credentials(creds: FirstCredentials) -> str:
    """The credentials block printed by ``init`` and ``dev``."""
    state = "created" if creds.created else "existing"
    return (
        f"first admin ({state}): {creds.email}\n"
        f"  AWS_ACCESS_KEY_ID={creds.access_key}\n"
        f"  AWS_SECRET_ACCESS_KEY={creds.secret_key}"
    )
