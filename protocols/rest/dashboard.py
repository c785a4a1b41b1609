"""The session-cookie dashboard API: accounts, keys, explorer, SFTP settings.

Sessions: ``POST /api/auth/signup`` or ``/api/auth/login`` sets the
``session`` cookie (HttpOnly, SameSite=Lax, Secure over https, Max-Age = the
session TTL); the token is random and only its hash is stored server-side;
``POST /api/auth/logout`` revokes it.  Every other route here needs the cookie
(401 otherwise) and is limited to ``accounts.dashboard_requests_per_minute``
per account (the documented 30 requests per minute).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from protocols.rest.common import (
    ApiError,
    check_rate,
    check_request_params,
    client_ip,
    decode_cursor,
    encode_cursor,
    from_storage,
    iso,
    json_response,
    read_json,
    string_field,
    too_many_requests,
)
from protocols.rest.session import COOKIE, SessionGate, from_dashboard
from storage import errors
from storage.accounts import AccountInfo
from storage.authz import AccessDenied, Action
from storage.core import StorageCore
from storage.ratelimit import RateLimiter
from storage.sessions import LoginAttempts
from storage.sftp_users import MIN_PASSWORD, DuplicatePublicKey, InvalidPublicKey
from storage.signup import default_bucket, signup

MIN_ACCOUNT_PASSWORD = 8
EXPLORER_PAGE = 1000



def _user(a: AccountInfo) -> dict[str, Any]:
    return {
        "id": a.id, "email": a.email, "plan": a.plan, "quotaBytes": a.quota_bytes,
        "usedBytes": a.used_bytes, "objectCount": a.object_count,
        "createdAt": iso(a.created_at),
    }



def create_dashboard_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The dashboard routes over a node's services."""
    bp = Blueprint("dashboard", __name__)
    bp.before_request(check_request_params)
    bp.before_request(from_dashboard)
    settings = services.settings
    # Failed logins are counted exactly, cluster-wide, in the database.
    logins = LoginAttempts(services.db, settings.accounts.login_attempts_per_minute, 60.0)
    signups = RateLimiter(max(settings.accounts.login_attempts_per_minute, 10), 60.0)
    ttl = settings.accounts.session_ttl_seconds

    def set_cookie(resp: Response, token: str) -> Response:
        resp.set_cookie(
            COOKIE, token, max_age=ttl, httponly=True, samesite="Lax",
            secure=request.scheme == "https", path="/",
        )
        return resp

    session_required = gate.required

    # -- accounts and sessions ------------------------------------------------------

    @bp.post("/api/auth/signup")
    async def signup_route() -> Any:
        if not settings.accounts.allow_signup:
            raise ApiError(403, "SignupDisabled",
                           "Self-service signup is disabled on this cluster.")
        check_rate(signups, f"signup:{client_ip()}")
        body = await read_json()
        email = string_field(body, "email", max_len=320)
        password = string_field(body, "password", max_len=1024)
        if len(password) < MIN_ACCOUNT_PASSWORD:
            raise ApiError(400, "WeakPassword",
                           f"The password must be at least {MIN_ACCOUNT_PASSWORD} characters.")
        try:
            result = await signup(services.accounts, services.buckets, email, password,
                                  region=settings.cluster.region)
        except ValueError as exc:
            raise ApiError(400, "InvalidEmail", str(exc)) from None
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        token = await services.sessions.create(result.account.id)
        resp = json_response({
            "user": _user(result.account),
            "accessKey": result.credentials.access_key,
            "secretKey": result.credentials.secret_key,
            "bucket": result.bucket.name,
        }, 201)
        return set_cookie(resp, token)

    @bp.post("/api/auth/login")
    async def login() -> Any:
        body = await read_json()
        email = string_field(body, "email", max_len=320).strip().lower()
        password = string_field(body, "password", max_len=1024)
        key = f"login:{email}"
        wait = await logins.attempt(key)
        if wait > 0:
            raise too_many_requests(wait)
        account = await services.accounts.check_password(email, password)
        if account is None or account.status != "active":
            raise ApiError(401, "InvalidCredentials", "The email or password is wrong.")
        await logins.succeeded(key)
        token = await services.sessions.create(account.id)
        return set_cookie(json_response({"user": _user(account)}), token)

    @bp.post("/api/auth/logout")
    async def logout() -> Any:
        token = request.cookies.get(COOKIE, "")
        if token:
            await services.sessions.revoke(token)
        resp = json_response({"success": True})
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax")
        return resp

    @bp.get("/api/auth/me")
    @session_required
    async def me(account: AccountInfo) -> Any:
        return json_response({"user": _user(account)})

    # -- access keys ----------------------------------------------------------------

    @bp.get("/api/keys")
    @session_required
    async def list_keys(account: AccountInfo) -> Any:
        keys = await services.accounts.list_access_keys(account.id)
        return json_response({"keys": [
            {"id": k.access_key, "accessKey": k.access_key, "name": k.name,
             "createdAt": iso(k.created_at)}
            for k in keys
        ]})

    @bp.post("/api/keys")
    @session_required
    async def create_key(account: AccountInfo) -> Any:
        body = await read_json()
        name = string_field(body, "name", required=False, max_len=128)
        try:
            creds = await services.accounts.create_access_key(account.id, name)
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        return json_response({"accessKey": creds.access_key, "secretKey": creds.secret_key}, 201)

    @bp.delete("/api/keys")
    @session_required
    async def delete_key(account: AccountInfo) -> Any:
        key_id = request.args.get("id", "")
        if not key_id:
            raise ApiError(400, "MissingParameter", "Pass the key to delete as ?id=.")
        if not await services.accounts.delete_access_key(account.id, key_id):
            raise ApiError(404, "NotFound", "You have no access key with this id.")
        return json_response({"success": True})

    # -- storage explorer ---------------------------------------------------------------

    @bp.get("/api/explorer")
    @session_required
    async def explorer(account: AccountInfo) -> Any:
        name = request.args.get("bucket", "")
        prefix = request.args.get("prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        try:
            bucket = (await services.authz.bucket(account.id, name, Action.READ) if name
                      else await default_bucket(services.buckets, account.id))
        except AccessDenied:
            raise ApiError(403, "AccessDenied", "You do not have access to this bucket.") from None
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        try:
            limit = int(request.args.get("limit", str(EXPLORER_PAGE)))
        except ValueError:
            raise ApiError(400, "InvalidArgument", "limit must be an integer.") from None
        if not 1 <= limit <= EXPLORER_PAGE:
            raise ApiError(400, "InvalidArgument", f"limit must be 1..{EXPLORER_PAGE}.")
        marker = decode_cursor(request.args.get("cursor", ""))
        page = await services.objects.list_objects(
            bucket, prefix=prefix, delimiter="/", marker=marker, max_keys=limit
        )
        items: list[tuple[str, dict[str, Any]]] = [
            (p, {"key": p, "type": "directory"}) for p in page.common_prefixes
        ]
        for e in page.entries:
            if e.key == prefix:
                continue  # the folder's own marker object ("mkdir" over SFTP/S3)
            items.append((e.key, {
                "key": e.key, "type": "file", "size": e.size,
                "contentType": e.content_type or "application/octet-stream",
                "lastModified": iso(e.last_modified),
            }))
        items.sort(key=lambda kv: kv[0].encode())
        out: dict[str, Any] = {"files": [v for _, v in items], "prefix": prefix,
                               "bucket": bucket.name}
        if page.is_truncated and page.next_marker:
            out["hasMore"] = True
            out["nextCursor"] = encode_cursor(page.next_marker)
        return json_response(out)

    # -- SFTP settings ----------------------------------------------------------------------

    def sftp_info(enabled: bool, username: str) -> dict[str, Any]:
        host = settings.listen.public_host or (request.host or "").rsplit(":", 1)[0]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return {"enabled": enabled, "username": username, "host": host,
                "port": settings.listen.sftp_port}

    @bp.post("/api/sftp")
    @session_required
    async def sftp_enable(account: AccountInfo) -> Any:
        body = await read_json()
        password = string_field(body, "password", max_len=1024)
        if len(password) < MIN_PASSWORD:
            raise ApiError(400, "WeakPassword",
                           f"The SFTP password must be at least {MIN_PASSWORD} characters.")
        status = await services.sftp_users.enable(account.id, password)
        return json_response(sftp_info(status.enabled, status.username))

    @bp.get("/api/sftp")
    @session_required
    async def sftp_status(account: AccountInfo) -> Any:
        status = await services.sftp_users.status(account.id)
        return json_response(sftp_info(status.enabled, status.username))

    @bp.delete("/api/sftp")
    @session_required
    async def sftp_disable(account: AccountInfo) -> Any:
        await services.sftp_users.disable(account.id)
        return json_response({"enabled": False})

    @bp.get("/api/sftp/keys")
    @session_required
    async def sftp_keys(account: AccountInfo) -> Any:
        keys = await services.sftp_users.list_keys(account.id)
        return json_response({"keys": [
            {"id": k.id, "name": k.name, "fingerprint": k.fingerprint,
             "publicKey": k.public_key, "createdAt": iso(k.created_at)} for k in keys
        ]})

    @bp.post("/api/sftp/keys")
    @session_required
    async def sftp_add_key(account: AccountInfo) -> Any:
        body = await read_json()
        public_key = string_field(body, "publicKey", max_len=16384)
        name = string_field(body, "name", required=False, max_len=128)
        try:
            k = await services.sftp_users.add_key(account.id, public_key, name)
        except InvalidPublicKey as exc:
            raise ApiError(400, exc.code, exc.message) from None
        except DuplicatePublicKey as exc:
            raise ApiError(409, exc.code, exc.message) from None
        except errors.StorageError as exc:
            raise ApiError(409, "TooManyKeys", exc.message) from None
        return json_response({"id": k.id, "name": k.name, "fingerprint": k.fingerprint,
                              "createdAt": iso(k.created_at)}, 201)

    @bp.delete("/api/sftp/keys")
    @session_required
    async def sftp_delete_key(account: AccountInfo) -> Any:
        key_id = request.args.get("id", "")
        if not key_id:
            raise ApiError(400, "MissingParameter", "Pass the key to delete as ?id=.")
        if not await services.sftp_users.delete_key(account.id, key_id):
            raise ApiError(404, "NotFound", "You have no SSH key with this id.")
        return json_response({"success": True})

    return bp
