"""The OAuth 2.0 endpoints of v2-drive (the document's "OAuth 2.0" section).

* ``POST /api/v2drive/oauth/clients`` (dashboard session): register an app
  ``{name, redirect_uris, scopes?, confidential?}``; its ``client_secret`` is
  shown once.
* ``GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope&state
  &code_challenge&code_challenge_method=S256``: the consent page of the
  logged-in user (dashboard session cookie); ``POST /oauth/authorize`` is its
  form, answered with a redirect to ``redirect_uri?code=...&state=...`` (or
  ``error=access_denied``).  Until the client and redirect URI are known to
  match, errors are a page, never a redirect (RFC 6749 4.1.2.1).
* ``POST /oauth/token``: ``authorization_code`` (with ``code_verifier``) and
  ``refresh_token`` grants; client authentication by HTTP Basic or form
  fields; RFC 6749 JSON answers and errors.
* ``POST /oauth/revoke``: RFC 7009 (always 200 for the client's own tokens).

The consent form carries an HMAC of the session and the request, so another
site cannot make a logged-in user's browser grant access (CSRF), and the
page may not be framed (clickjacking).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from quart import Blueprint, Response, request

from protocols.rest.common import ApiError, json_response, read_json
from protocols.rest.session import COOKIE, session_account
from storage import events
from storage.accounts import AccountInfo
from storage.core import StorageCore
from storage.crypto import constant_time_equals, derive_key
from storage.drive_keys import SCOPES
from storage.oauth import ClientInfo, OAuthError, OAuthServer, parse_scopes

FORM_LIMIT = 16 * 1024
_PAGE_HEADERS = {"Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                            "form-action 'self'; frame-ancestors 'none'",
                 "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SCOPE_TEXT = {"files.read": "Read your files and folders",
              "files.write": "Create, change and delete your files and folders",
              "teams.read": "See your teams and their members",
              "teams.write": "Manage your teams", "audit.read": "Read your audit logs",
              "webhooks.read": "See your webhooks", "webhooks.write": "Manage your webhooks"}
_FIELDS = ("client_id", "redirect_uri", "scope", "state", "code_challenge")


def page(title: str, body: str, status: int = 200) -> Response:
    """A small HTML page."""
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           "</title><style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}"
           "button{margin-right:1rem;padding:.5rem 1rem}</style></head><body>"
           f"<h1>{html.escape(title)}</h1>{body}</body></html>")
    return Response(doc, status=status, headers=_PAGE_HEADERS)


def token_error(exc: OAuthError) -> Response:
    """An RFC 6749 error answer of the token and revocation endpoints."""
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    return Response(json.dumps({"error": exc.code, "error_description": exc.message}),
                    status=exc.status, headers=headers, content_type="application/json")


async def read_form() -> dict[str, str]:
    """The request's form fields (first value each), bounded in size."""
    data = bytearray()
    async for piece in request.body:
        data += piece
        if len(data) > FORM_LIMIT:
            raise OAuthError("invalid_request", "The form is too large.")
    try:
        fields = parse_qs(data.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "The form is not UTF-8.") from None
    out = {k: v[0] for k, v in fields.items()}
    if any("\x00" in v for v in out.values()):
        raise OAuthError("invalid_request", "NUL is not allowed.")
    return out


def basic_credentials() -> tuple[str, str] | None:
    """Client id and secret of an HTTP Basic header, if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from None
    cid, _, secret = raw.partition(":")
    return unquote(cid), unquote(secret)


class OAuthEndpoints:
    """The consent, token and revocation endpoints over one storage core."""

    def __init__(self, services: StorageCore, server: OAuthServer) -> None:
        self.services = services
        self.server = server
        self._csrf_key = derive_key(services.settings.cluster_secret(), "v2drive-oauth-consent")

    async def _session(self) -> tuple[AccountInfo, str] | None:
        found = await session_account(self.services.sessions)
        return None if found is None else (found, request.cookies.get(COOKIE, ""))

    def _csrf(self, session_token: str, fields: dict[str, str]) -> str:
        msg = "\n".join([session_token, *(fields.get(f, "") for f in _FIELDS)])
        return hmac.new(self._csrf_key, msg.encode(), hashlib.sha256).hexdigest()

    async def _checked(self, args: dict[str, str]) -> tuple[ClientInfo, tuple[str, ...]]:
        """Client and scopes of an authorization request; raises (page, redirect) errors."""
        client = await self.server.client(args.get("client_id", ""))
        if client is None or args.get("redirect_uri") not in client.redirect_uris:
            raise _PageError("This app is unknown or its redirect URI is not registered.")
        if args.get("response_type", "code") != "code":
            raise _Redirect(client, args, "unsupported_response_type",
                            "Only response_type=code is supported.")
        if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
            raise _Redirect(client, args, "invalid_request",
                            "PKCE is required: code_challenge with code_challenge_method=S256.")
        try:
            scopes = parse_scopes(args.get("scope") or " ".join(client.scopes), client.scopes)
        except OAuthError as exc:
            raise _Redirect(client, args, exc.code, exc.message) from None
        return client, scopes

    async def authorize_page(self) -> Response:
        """GET /oauth/authorize: the consent page."""
        args = {k: v for k, v in request.args.items()}
        try:
            client, scopes = await self._checked(args)
        except _PageError as exc:
            return page("Cannot authorize", f"<p>{html.escape(exc.message)}</p>", 400)
        except _Redirect as exc:
            return exc.response()
        session = await self._session()
        if session is None:
            return page("Log in first", "<p>Log in to your account in this browser, then "
                        "open this link again.</p>", 401)
        account, token = session
        hidden = "".join(f"<input type='hidden' name='{f}' value='{html.escape(args.get(f, ''))}'>"
                         for f in _FIELDS if f != "scope")
        hidden += (f"<input type='hidden' name='scope' value='{html.escape(' '.join(scopes))}'>"
                   f"<input type='hidden' name='csrf' value='"
                   f"{self._csrf(token, {**args, 'scope': ' '.join(scopes)})}'>")
        items = "".join(f"<li>{html.escape(SCOPE_TEXT.get(s, s))} (<code>{s}</code>)</li>"
                        for s in scopes)
        body = (f"<p><strong>{html.escape(client.name)}</strong> asks to access your account "
                f"<strong>{html.escape(account.email)}</strong>:</p><ul>{items}</ul>"
                f"<form method='post' action='/oauth/authorize'>{hidden}"
                "<button name='decision' value='allow'>Allow</button>"
                "<button name='decision' value='deny'>Deny</button></form>")
        return page("Authorize access", body)

    async def authorize_decision(self) -> Response:
        """POST /oauth/authorize: the consent form."""
        try:
            form = await read_form()
            client, scopes = await self._checked({**form, "response_type": "code",
                                                  "code_challenge_method": "S256"})
        except (OAuthError, _PageError) as exc:
            return page("Cannot authorize", f"<p>{html.escape(exc.message)}</p>", 400)
        except _Redirect as exc:
            return exc.response()
        session = await self._session()
        if session is None:
            return page("Log in first", "<p>Your session has ended: log in again.</p>", 401)
        account, token = session
        expected = self._csrf(token, {**form, "scope": " ".join(scopes)})
        if not constant_time_equals(form.get("csrf", ""), expected):
            return page("Cannot authorize", "<p>This form has expired; start again.</p>", 403)
        if form.get("decision") != "allow":
            return _Redirect(client, form, "access_denied", "The user denied access.").response()
        code = await self.server.issue_code(client, account.id, form["redirect_uri"], scopes,
                                            form["code_challenge"])
        return _redirect(form["redirect_uri"], {"code": code, "state": form.get("state")})

    async def _client_of(self, form: dict[str, str]) -> ClientInfo:
        basic = basic_credentials()
        if basic is not None:
            return await self.server.authenticate(*basic)
        return await self.server.authenticate(form.get("client_id", ""),
                                              form.get("client_secret") or None)

    async def token(self) -> Response:
        """POST /oauth/token."""
        try:
            form = await read_form()
            client = await self._client_of(form)
            grant = form.get("grant_type")
            if grant == "authorization_code":
                pair = await self.server.redeem(client, form.get("code", ""),
                                                form.get("redirect_uri", ""),
                                                form.get("code_verifier", ""))
            elif grant == "refresh_token":
                pair = await self.server.refresh(client, form.get("refresh_token", ""),
                                                 form.get("scope") or None)
            else:
                raise OAuthError("unsupported_grant_type",
                                 "grant_type must be authorization_code or refresh_token.")
        except OAuthError as exc:
            return token_error(exc)
        body = {"access_token": pair.access_token, "token_type": "Bearer",
                "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
                "scope": " ".join(pair.scopes)}
        return Response(json.dumps(body), status=200, headers=_NO_STORE,
                        content_type="application/json")

    async def revoke(self) -> Response:
        """POST /oauth/revoke (RFC 7009)."""
        try:
            form = await read_form()
            client = await self._client_of(form)
            if not form.get("token"):
                raise OAuthError("invalid_request", "token is required.")
            await self.server.revoke(client, form["token"])
        except OAuthError as exc:
            return token_error(exc)
        return Response("", status=200, headers=_NO_STORE)


class _PageError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Redirect(Exception):
    """An authorization error sent back to the (verified) redirect URI."""

    def __init__(self, client: ClientInfo, args: dict[str, str], code: str,
                 message: str) -> None:
        super().__init__(message)
        self.uri, self.state, self.code, self.message = (args["redirect_uri"],
                                                         args.get("state"), code, message)

    def response(self) -> Response:
        return _redirect(self.uri, {"error": self.code, "error_description": self.message,
                                    "state": self.state})


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    sep = "&" if "?" in uri else "?"
    return Response("", status=302, headers={"Location": f"{uri}{sep}{query}",
                                             "Cache-Control": "no-store"})


def create_oauth_blueprint(services: StorageCore, server: OAuthServer) -> Blueprint:
    """The OAuth routes (and the session route that registers apps)."""
    bp = Blueprint("v2drive_oauth", __name__)
    endpoints = OAuthEndpoints(services, server)

    @bp.get("/oauth/authorize")
    async def authorize() -> Response:
        events.set_origin("oauth")
        return await endpoints.authorize_page()

    @bp.post("/oauth/authorize")
    async def decide() -> Response:
        events.set_origin("oauth")
        return await endpoints.authorize_decision()

    @bp.post("/oauth/token")
    async def token() -> Response:
        return await endpoints.token()

    @bp.post("/oauth/revoke")
    async def revoke() -> Response:
        return await endpoints.revoke()

    @bp.post("/api/v2drive/oauth/clients")
    async def register() -> Any:
        session = await endpoints._session()
        if session is None:
            raise ApiError(401, "Unauthorized", "Log in first: this needs a session cookie.")
        body = await read_json()
        name, uris = body.get("name"), body.get("redirect_uris")
        scopes = body.get("scopes")
        if not isinstance(name, str) or not 0 < len(name) <= 128 or not isinstance(uris, list) \
                or not all(isinstance(u, str) for u in uris) \
                or (scopes is not None and (not isinstance(scopes, list)
                                            or not all(isinstance(s, str) for s in scopes))):
            raise ApiError(400, "InvalidField",
                           "Give a name, redirect_uris (a list) and optionally scopes.")
        try:
            client, secret = await server.register(session[0].id, name, uris, scopes,
                                                   bool(body.get("confidential", True)))
        except OAuthError as exc:
            raise ApiError(400, "InvalidField", exc.message) from None
        return json_response({"client_id": client.id, "client_secret": secret,
                              "name": client.name, "redirect_uris": list(client.redirect_uris),
                              "scopes": list(client.scopes),
                              "available_scopes": list(SCOPES)}, 201)

    return bp
