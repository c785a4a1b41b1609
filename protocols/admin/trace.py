"""ASGI middleware that publishes one :class:`~storage.trace.TraceEvent` per request.

``cluster/node.py`` wraps every app it serves with :class:`TraceMiddleware`
(protocol = the app's name).  The middleware measures status, bytes in and
out and duration itself; for S3 it also derives the access key from the
``Authorization`` header or ``X-Amz-Credential`` (presigned URLs), which it
maps to the account.

Apps fill in what they know: the middleware puts a mutable dict under
``scope["cloudstorage.trace"]`` and reads it after the app ran; keys
``account``, ``operation``, ``bucket`` and ``key`` set there win over the
derived values.  The S3 app sets the operation its router resolved
(protocols/s3/router.py), so there is one S3 classifier, not two; without a
note the operation is ``METHOD /path``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote

import trio

from storage.trace import TraceBus, TraceEvent

SCOPE_KEY = "cloudstorage.trace"
# The console's own polling would drown every other request: requests to the
# admin API are labelled with this protocol (and the trace stream itself is
# never traced, it lasts as long as the console is open).
ADMIN_PROTOCOL = "admin"
ADMIN_PREFIX = "/admin/"
UNTRACED_PATHS = frozenset({"/admin/v1/trace"})

AccountResolver = Callable[[str], Awaitable[str]]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/")
_SIGV2_RE = re.compile(r"^AWS ([^:\s]+):")


def s3_access_key(headers: dict[str, str], query: dict[str, list[str]]) -> str:
    """The access key id of a SigV4/SigV2 request (header or presigned), or ""."""
    auth = headers.get("authorization", "")
    if m := _CREDENTIAL_RE.search(auth):
        return m.group(1)
    if m := _SIGV2_RE.match(auth):
        return m.group(1)
    if cred := query.get("X-Amz-Credential"):
        return cred[0].split("/", 1)[0]
    if key := query.get("AWSAccessKeyId"):
        return key[0]
    return ""


_V2_OBJECT_RE = re.compile(r"^/v2/buckets/([^/]+)(?:/objects/(.+))?$")


def _web_target(path: str) -> tuple[str, str]:
    # The v2-objects dialect names bucket and key in its path; other dialects
    # can report theirs through the scope dict.
    if m := _V2_OBJECT_RE.match(path):
        return unquote(m.group(1)), unquote(m.group(2) or "")
    return "", ""


class TraceMiddleware:
    """Wrap an ASGI app so each HTTP request publishes a trace event."""

    def __init__(
        self, app: ASGIApp, *, protocol: str, bus: TraceBus, node_id: str,
        resolve_account: AccountResolver | None = None,
    ) -> None:
        self.app = app
        self.protocol = protocol
        self.bus = bus
        self.node_id = node_id
        self.resolve_account = resolve_account

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point."""
        path = scope.get("path", "")
        if scope.get("type") != "http" or path in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.bus.subscriber_count:
            # Nobody watches the trace (as it started): only the request
            # counters need this request, and only its status.
            await self._count_only(scope, receive, send, path)
            return
        started = time.time()
        t0 = time.perf_counter()
        notes: dict[str, Any] = {}
        scope[SCOPE_KEY] = notes
        counters = {"in": 0, "out": 0, "status": 0}

        async def counting_receive() -> dict[str, Any]:
            message = await receive()
            if message.get("type") == "http.request":
                counters["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                counters["status"] = int(message["status"])
            elif kind == "http.response.body":
                counters["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        except BaseException:
            if not counters["status"]:
                counters["status"] = 500
            raise
        finally:
            duration = (time.perf_counter() - t0) * 1000
            # Shielded: a client that went away still produces its event.
            with trio.CancelScope(shield=True):
                await self._publish(scope, notes, counters, started, duration)

    async def _count_only(self, scope: dict[str, Any], receive: Any, send: Any,
                          path: str) -> None:
        status = 0

        async def status_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, status_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            protocol = self.protocol
            if protocol != "s3" and path.startswith(ADMIN_PREFIX):
                protocol = ADMIN_PROTOCOL
            self.bus.count(protocol, status)

    async def _publish(
        self, scope: dict[str, Any], notes: dict[str, Any], counters: dict[str, int],
        started: float, duration_ms: float,
    ) -> None:
        method = scope.get("method", "")
        path = scope.get("path", "")
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = parse_qs(raw_query, keep_blank_values=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        protocol = self.protocol
        access_key = ""
        bucket = key = ""
        operation = f"{method} {path}"
        if protocol == "s3":
            # The S3 app notes the operation its router resolved (and the
            # bucket and key, virtual-host style included); this path-style
            # split only labels a request refused before it got that far.
            bucket, _, key = path.lstrip("/").partition("/")
            access_key = s3_access_key(headers, query)
        else:
            if path.startswith(ADMIN_PREFIX):
                protocol = ADMIN_PROTOCOL
            bucket, key = _web_target(path)
        account = str(notes.get("account", ""))
        if not account and access_key and self.resolve_account is not None:
            try:
                account = await self.resolve_account(access_key)
            except Exception:  # tracing must never break serving
                account = ""
        client = scope.get("client") or ("", 0)
        self.bus.publish(TraceEvent(
            time=started, node=self.node_id, protocol=protocol,
            operation=str(notes.get("operation") or operation), status=counters["status"],
            duration_ms=round(duration_ms, 3), method=method, path=path, account=account,
            access_key=access_key, bucket=str(notes.get("bucket") or bucket),
            key=str(notes.get("key") or key), bytes_in=counters["in"],
            bytes_out=counters["out"], remote=str(client[0]),
        ))


def wrap_apps(
    apps: list[tuple[str, int, Any]], bus: TraceBus, node_id: str,
    resolve_account: AccountResolver | None = None,
) -> list[tuple[str, int, Any]]:
    """``build_apps``' list with every app wrapped (protocol = the app's name)."""
    return [
        (name, port, TraceMiddleware(app, protocol=name, bus=bus, node_id=node_id,
                                     resolve_account=resolve_account))
        for name, port, app in apps
    ]


class AccountCache:
    """Access key -> account email, cached (a trace event must not cost a
    database round trip per request).  Entries expire so a revoked key or a
    changed email shows up within ``ttl`` seconds."""

    def __init__(
        self, lookup: AccountResolver, *, ttl: float = 60.0, max_entries: int = 10000
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, str]] = {}

    async def __call__(self, access_key: str) -> str:
        """The account label of ``access_key`` ("" if unknown)."""
        now = time.monotonic()
        hit = self._cache.get(access_key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        label = await self._lookup(access_key)
        if len(self._cache) >= self._max:
            self._cache.clear()  # crude but bounded; refills from hot keys at once
        self._cache[access_key] = (now, label)
        return label
