"""A secondary worker process hands the admin API to its node's primary.

The admin API (``/admin/v1``) reports and drives per-node state that lives
in the primary alone: the background workers (pause, trigger, progress), the
node's pid and uptime, and the live trace that every process of the node
feeds (cluster/worker_link.py).  A request for it that the kernel hands to a
secondary (the web port is shared with SO_REUSEPORT) is forwarded, as it
came, to the primary's web app on a Unix socket, and the answer streamed
back: the trace stream too, for as long as the console watches.  The primary
authenticates it as any other request.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

ADMIN_PREFIX = "/admin/"
# Admin requests carry small JSON documents.
MAX_BODY = 8 * 1024 * 1024
# Hop-by-hop headers are the proxy's own business on each side.
_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te",
                  b"proxy-connection"})

ASGIApp = Any


def _error(status: int, code: str, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": code, "message": message, "status": status}).encode()
    return [(b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode())], body


class AdminProxy:
    """ASGI wrapper: ``/admin/*`` goes to the primary, the rest to ``app``."""

    def __init__(self, app: ASGIApp, primary_socket: str) -> None:
        self.app = app
        self.socket = primary_socket
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the trio run.  No read timeout: a trace
        # stream lasts as long as the console is open.
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=self.socket),
                timeout=httpx.Timeout(None, connect=5.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=16),
            )
        return self._client

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point."""
        if scope.get("type") != "http" or not scope.get("path", "").startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await self._answer(send, 413, "EntityTooLarge", "the request body is too large")
                return
            if not message.get("more_body", False):
                break
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = "http://primary" + raw_path.decode("latin-1") + (
            "?" + query.decode("latin-1") if query else "")
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in _HOP
                   and k.lower() != b"content-length"]
        request = self._http().build_request(scope["method"], url, headers=headers,
                                             content=bytes(body))
        try:
            response = await self._http().send(request, stream=True)
        except httpx.HTTPError:
            await self._answer(send, 503, "ServiceUnavailable",
                               "this node's primary process does not answer; retry")
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw
                                    if k.lower() not in _HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError:
            return  # the primary went away mid-answer: the client sees the cut
        finally:
            await response.aclose()

    @staticmethod
    async def _answer(send: Any, status: int, code: str, message: str) -> None:
        headers, body = _error(status, code, message)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
