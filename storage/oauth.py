"""OAuth 2.0 authorization server of v2-drive (RFC 6749, PKCE RFC 7636,
revocation RFC 7009).

* Clients are registered by a developer account with their redirect URIs
  (matched exactly) and the scopes they may ask for; a confidential client
  has a secret, a public one does not.  Every client must use PKCE with
  ``S256`` (``plain`` is refused: it protects nothing against a stolen code).
* An authorization code lives :data:`CODE_TTL` seconds and is used once: it
  is deleted in the transaction that redeems it, so a replay finds nothing.
* An access token (``cs_oat_...``) lives :data:`ACCESS_TTL` seconds; its
  refresh token (``cs_ort_...``) :data:`REFRESH_TTL`.  Refreshing rotates the
  pair (the old refresh token stops working); a refresh may narrow, never
  widen, the scopes.  Revoking either token revokes the pair.
* Only SHA-256 hashes of codes, tokens and secrets are stored; tokens are
  looked up in the shared database on every request, so a revocation holds
  on every node at once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from tortoise.transactions import in_transaction

from storage import errors
from storage.accounts import AccountInfo, _account
from storage.api_keys import hash_key
from storage.crypto import constant_time_equals
from storage.db import Database
from storage.drive_keys import SCOPES
from storage.models import Account, OAuthClient, OAuthCode, OAuthToken

CODE_TTL = 600
ACCESS_TTL = 3600
REFRESH_TTL = 30 * 24 * 3600
MAX_REDIRECTS = 10


class OAuthError(errors.StorageError):
    """An OAuth error: ``code`` is the RFC 6749 error name."""

    kind = errors.Kind.INVALID

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class ClientInfo:
    """A registered client (never its secret)."""

    id: str
    account_id: str
    name: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    confidential: bool


@dataclass(frozen=True)
class TokenPair:
    """Tokens just issued: the only time they leave the server."""

    access_token: str
    refresh_token: str
    scopes: tuple[str, ...]
    expires_in: int


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse_scopes(raw: str | Sequence[str] | None, allowed: Sequence[str]) -> tuple[str, ...]:
    """Requested scopes (space-separated) in canonical order; invalid_scope otherwise."""
    wanted = set(raw.split() if isinstance(raw, str) else (raw or ()))
    if not wanted or wanted - set(allowed):
        raise OAuthError("invalid_scope", f"scope must be a non-empty subset of "
                                          f"{' '.join(allowed)}")
    return tuple(s for s in SCOPES if s in wanted)


def check_redirect(uri: str) -> str:
    """A redirect URI a client may register: absolute, https or loopback http, no fragment."""
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if (parts.scheme != "https" and not (parts.scheme == "http" and loopback)) \
            or not parts.netloc or parts.fragment or len(uri) > 2048:
        raise OAuthError("invalid_request", "redirect URIs must be absolute https URLs "
                                            "(http only for loopback) without a fragment")
    return uri


def s256(verifier: str) -> str:
    """The S256 challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _client(c: OAuthClient) -> ClientInfo:
    return ClientInfo(c.id, c.account_id, c.name,  # type: ignore[attr-defined]
                      tuple(c.redirect_uris), tuple(c.scopes), bool(c.secret_hash))


class OAuthServer:
    """Clients, codes and tokens in the shared database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- clients --------------------------------------------------------------------------

    async def register(self, account_id: str, name: str, redirect_uris: Sequence[str],
                       scopes: Sequence[str] | None, confidential: bool
                       ) -> tuple[ClientInfo, str | None]:
        """A new client and its secret (None for a public client)."""
        uris = [check_redirect(u) for u in redirect_uris]
        if not uris or len(uris) > MAX_REDIRECTS:
            raise OAuthError("invalid_request", f"give 1 to {MAX_REDIRECTS} redirect URIs")
        chosen = parse_scopes(list(scopes) if scopes else list(SCOPES), SCOPES)
        secret = "cs_ocs_" + secrets.token_urlsafe(32) if confidential else None
        client_id = "cli_" + secrets.token_hex(10)

        async def tx() -> None:
            await OAuthClient.create(id=client_id, account_id=account_id, name=name,
                                     redirect_uris=uris, scopes=list(chosen),
                                     secret_hash=hash_key(secret) if secret else "",
                                     created_at=_now())

        await self._db.run(tx)
        return ClientInfo(client_id, account_id, name, tuple(uris), chosen, confidential), secret

    async def client(self, client_id: str) -> ClientInfo | None:
        """The client with this id, if any."""
        async def q() -> ClientInfo | None:
            row = await OAuthClient.get_or_none(id=client_id[:40])
            return None if row is None else _client(row)

        return await self._db.run(q)

    async def authenticate(self, client_id: str, secret: str | None) -> ClientInfo:
        """The client, its secret checked when it has one; invalid_client otherwise."""
        async def q() -> tuple[ClientInfo, str] | None:
            row = await OAuthClient.get_or_none(id=client_id[:40])
            return None if row is None else (_client(row), row.secret_hash)

        found = await self._db.run(q) if client_id else None
        if found is None:
            raise OAuthError("invalid_client", "Unknown client.", 401)
        info, secret_hash = found
        if secret_hash and not (secret and constant_time_equals(hash_key(secret), secret_hash)):
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        return info

    # -- codes ----------------------------------------------------------------------------

    async def issue_code(self, client: ClientInfo, account_id: str, redirect_uri: str,
                         scopes: Sequence[str], challenge: str) -> str:
        """A new authorization code for the account's consent."""
        code = secrets.token_urlsafe(32)

        async def tx() -> None:
            await OAuthCode.create(code_hash=hash_key(code), client_id=client.id,
                                   account_id=account_id, redirect_uri=redirect_uri,
                                   scopes=list(scopes), challenge=challenge,
                                   expires_at=_now() + timedelta(seconds=CODE_TTL))

        await self._db.run(tx)
        return code

    async def redeem(self, client: ClientInfo, code: str, redirect_uri: str,
                     verifier: str) -> TokenPair:
        """Tokens for a code (single use, PKCE checked); invalid_grant otherwise."""
        digest = hash_key(code)

        async def tx() -> TokenPair | OAuthError:
            # Errors are returned, not raised, so the code's deletion commits
            # even when its redemption fails: a code is spent by any use.
            async with in_transaction():
                row = await OAuthCode.get_or_none(code_hash=digest)
                if row is None or not await OAuthCode.filter(code_hash=digest).delete():
                    return OAuthError("invalid_grant", "The code is invalid or was used.")
                if _aware(row.expires_at) < _now():
                    return OAuthError("invalid_grant", "The code has expired.")
                if row.client_id != client.id or row.redirect_uri != redirect_uri:
                    return OAuthError("invalid_grant", "The code was issued to another client "
                                                       "or redirect URI.")
                if not verifier or not constant_time_equals(s256(verifier), row.challenge):
                    return OAuthError("invalid_grant", "The code_verifier does not match.")
                return await _new_pair(client.id, row.account_id, tuple(row.scopes))

        return _raised(await self._db.run(tx))

    # -- tokens ---------------------------------------------------------------------------

    async def refresh(self, client: ClientInfo, refresh_token: str,
                      scope: str | None) -> TokenPair:
        """A new pair for a refresh token (rotated); invalid_grant otherwise."""
        digest = hash_key(refresh_token)

        async def tx() -> TokenPair | OAuthError:
            async with in_transaction():
                row = await OAuthToken.get_or_none(refresh_hash=digest)
                if (row is None or row.revoked or row.client_id != client.id
                        or _aware(row.refresh_expires_at) < _now()):
                    return OAuthError("invalid_grant", "The refresh token is invalid.")
                try:
                    scopes = (tuple(row.scopes) if scope is None
                              else parse_scopes(scope, row.scopes))
                except OAuthError as exc:
                    return exc
                # Only one of two refreshes racing with the same token wins.
                if not await OAuthToken.filter(id=row.id, revoked=False).update(revoked=True):
                    return OAuthError("invalid_grant", "The refresh token is invalid.")
                return await _new_pair(client.id, row.account_id, scopes)

        return _raised(await self._db.run(tx))

    async def revoke(self, client: ClientInfo, token: str) -> None:
        """Revoke the pair of an access or refresh token of this client (RFC 7009:
        an unknown token is not an error)."""
        digest = hash_key(token)

        async def tx() -> None:
            await OAuthToken.filter(client_id=client.id, access_hash=digest).update(revoked=True)
            await OAuthToken.filter(client_id=client.id, refresh_hash=digest).update(revoked=True)

        await self._db.run(tx)

    async def resolve(self, token: str) -> tuple[AccountInfo, tuple[str, ...]] | None:
        """The account and scopes of a live access token, else None."""
        if not token.startswith("cs_oat_") or len(token) > 128:
            return None
        digest = hash_key(token)

        async def q() -> tuple[AccountInfo, tuple[str, ...]] | None:
            row = await OAuthToken.get_or_none(access_hash=digest)
            if row is None or row.revoked or _aware(row.expires_at) < _now():
                return None
            account = await Account.get_or_none(id=row.account_id)
            return None if account is None else (_account(account), tuple(row.scopes))

        return await self._db.run(q)


async def _new_pair(client_id: str, account_id: str, scopes: tuple[str, ...]) -> TokenPair:
    access, refresh = "cs_oat_" + secrets.token_urlsafe(32), "cs_ort_" + secrets.token_urlsafe(32)
    now = _now()
    await OAuthToken.create(id="tok_" + secrets.token_hex(8), access_hash=hash_key(access),
                            refresh_hash=hash_key(refresh), client_id=client_id,
                            account_id=account_id, scopes=list(scopes),
                            expires_at=now + timedelta(seconds=ACCESS_TTL),
                            refresh_expires_at=now + timedelta(seconds=REFRESH_TTL),
                            created_at=now)
    return TokenPair(access, refresh, scopes, ACCESS_TTL)


def _raised(result: TokenPair | OAuthError) -> TokenPair:
    if isinstance(result, OAuthError):
        raise result
    return result
