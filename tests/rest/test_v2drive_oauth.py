"""v2-drive OAuth 2.0 (seed 004) as a third-party app uses it: authlib's
OAuth2Session runs the authorization-code flow with PKCE S256 against a live
node, refreshes, has its scopes enforced and loses access on revocation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from tests.harness import NodeProcess
from tests.rest.conftest import User, signup
from tests.rest.test_v2drive_support import auth, error_of

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The node is served over plain http on loopback in tests.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    yield


def register_app(user: User, **body: object) -> dict:
    r = user.client.post("/api/v2drive/oauth/clients", json={
        "name": "Acme Sync", "redirect_uris": [REDIRECT], **body})
    assert r.status_code == 201, r.text
    return r.json()


def consent(user: User, url: str, decision: str = "allow") -> httpx.Response:
    """What the user's browser does: open the consent page, press a button."""
    page = user.client.get(url)
    assert page.status_code == 200, page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    form = dict(re.findall(r"<input type='hidden' name='(\w+)' value='([^']*)'>", page.text))
    r = user.client.post("/oauth/authorize", data={**form, "decision": decision})
    assert r.status_code == 302, r.text
    return r


def callback_params(r: httpx.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(r.headers["Location"]).query).items()}


def test_authorization_code_pkce_refresh_scopes_revoke(node: NodeProcess) -> None:
    user = signup(node)
    web = node.web_url
    app = register_app(user, scopes=["files.read", "files.write", "teams.read"])
    session = OAuth2Session(app["client_id"], app["client_secret"],
                            scope="files.read teams.read", redirect_uri=REDIRECT,
                            code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = session.create_authorization_url(f"{web}/oauth/authorize",
                                                  code_verifier=verifier)
    page = user.client.get(url)
    assert "Acme Sync" in page.text and "files.read" in page.text
    assert "files.write" not in page.text  # only what was asked for
    back = consent(user, url)
    location = back.headers["Location"]
    assert location.startswith(REDIRECT) and callback_params(back)["state"] == state
    token = session.fetch_token(f"{web}/oauth/token", authorization_response=location,
                                code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["scope"] == "files.read teams.read"
    assert token["expires_in"] == 3600 and token["refresh_token"]

    me = session.get(f"{web}/v2/users/me")
    assert me.status_code == 200 and me.json()["id"] == user.account_id
    assert session.get(f"{web}/v2/users").status_code == 200  # teams.read
    # Scopes are enforced: files.write was not granted.
    denied = httpx.post(f"{web}/v2/folders", json={"name": "x"},
                        headers=auth(token["access_token"]))
    assert error_of(denied) == (403, "insufficient_scope")
    # A code is used once.
    code = callback_params(back)["code"]
    with pytest.raises(OAuthError) as replay:
        session.fetch_token(f"{web}/oauth/token", code=code, code_verifier=verifier)
    assert replay.value.error == "invalid_grant"

    # Refresh rotates the pair: the old tokens stop working.
    old = dict(token)
    fresh = session.refresh_token(f"{web}/oauth/token")
    assert fresh["access_token"] != old["access_token"]
    assert session.get(f"{web}/v2/users/me").status_code == 200
    assert error_of(httpx.get(f"{web}/v2/users/me", headers=auth(old["access_token"]))) == (
        401, "invalid_token")
    stale = httpx.post(f"{web}/oauth/token", auth=(app["client_id"], app["client_secret"]),
                       data={"grant_type": "refresh_token",
                             "refresh_token": old["refresh_token"]})
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    # A refresh may narrow the scopes, never widen them.
    wider = httpx.post(f"{web}/oauth/token", auth=(app["client_id"], app["client_secret"]),
                       data={"grant_type": "refresh_token", "scope": "files.write",
                             "refresh_token": fresh["refresh_token"]})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"

    # Revocation: the app loses access at once.
    assert session.revoke_token(f"{web}/oauth/revoke", token=fresh["refresh_token"],
                                token_type_hint="refresh_token").status_code == 200
    assert error_of(httpx.get(f"{web}/v2/users/me", headers=auth(fresh["access_token"]))) == (
        401, "invalid_token")
    with pytest.raises(OAuthError):
        session.refresh_token(f"{web}/oauth/token", refresh_token=fresh["refresh_token"])
    user.client.close()


def test_public_client_and_refusals(node: NodeProcess) -> None:
    user = signup(node)
    web = node.web_url
    app = register_app(user, confidential=False, scopes=["files.read"])
    assert app["client_secret"] is None
    session = OAuth2Session(app["client_id"], scope="files.read", redirect_uri=REDIRECT,
                            code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(f"{web}/oauth/authorize", code_verifier=verifier)

    # A wrong verifier spends the code.
    back = consent(user, url)
    with pytest.raises(OAuthError) as wrong:
        session.fetch_token(f"{web}/oauth/token", authorization_response=back.headers["Location"],
                            code_verifier=generate_token(48))
    assert wrong.value.error == "invalid_grant"
    with pytest.raises(OAuthError):
        session.fetch_token(f"{web}/oauth/token", authorization_response=back.headers["Location"],
                            code_verifier=verifier)
    # The right one on a new code works.
    back = consent(user, url)
    token = session.fetch_token(f"{web}/oauth/token",
                                authorization_response=back.headers["Location"],
                                code_verifier=verifier)
    assert session.get(f"{web}/v2/files").status_code == 200
    assert token["scope"] == "files.read"

    # The user says no.
    denied = callback_params(consent(user, url, decision="deny"))
    assert denied["error"] == "access_denied"
    # Errors sent back to a verified redirect URI...
    base = {"client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
            "state": "s1"}
    no_pkce = user.client.get("/oauth/authorize", params=base)
    assert no_pkce.status_code == 302
    assert callback_params(no_pkce)["error"] == "invalid_request"
    plain = user.client.get("/oauth/authorize", params={
        **base, "code_challenge": "abc", "code_challenge_method": "plain"})
    assert callback_params(plain)["error"] == "invalid_request"
    too_wide = user.client.get("/oauth/authorize", params={
        **base, "scope": "files.write", "code_challenge": "x" * 43,
        "code_challenge_method": "S256"})
    assert callback_params(too_wide)["error"] == "invalid_scope"
    token_type = user.client.get("/oauth/authorize", params={**base, "response_type": "token"})
    assert callback_params(token_type)["error"] == "unsupported_response_type"
    # ...and those that must not redirect anywhere.
    bad_redirect = user.client.get("/oauth/authorize", params={
        **base, "redirect_uri": "https://evil.example/cb"})
    assert bad_redirect.status_code == 400 and "Location" not in bad_redirect.headers
    assert httpx.get(url).status_code == 401  # no session: log in first
    forged = user.client.post("/oauth/authorize", data={
        **base, "scope": "files.read", "code_challenge": "x" * 43, "decision": "allow",
        "csrf": "0" * 64})
    assert forged.status_code == 403
    # Token endpoint errors in RFC 6749's shape.
    bad_client = httpx.post(f"{web}/oauth/token", auth=("cli_nope", "x"),
                            data={"grant_type": "authorization_code", "code": "x"})
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    grant = httpx.post(f"{web}/oauth/token", data={"grant_type": "password",
                                                   "client_id": app["client_id"]})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    user.client.close()
