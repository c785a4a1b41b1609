"""HTTP client of the admin API, used by the console (asyncio, httpx).

Every failure becomes a :class:`ConsoleError` whose message an operator can
act on; screens show it instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

API = "/admin/v1"


class ConsoleError(Exception):
    """A failure the console shows as a message."""

    title = "Error"


class Unreachable(ConsoleError):
    """The node does not answer."""

    title = "Node unreachable"


class Unauthorized(ConsoleError):
    """The token was refused."""

    title = "Admin token rejected"


class ApiFailure(ConsoleError):
    """The API answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code, self.message = status, code, message
        self.title = f"{status} {code}"


class AdminClient:
    """A connection to one node's admin API."""

    def __init__(self, url: str, token: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout,
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        """One API call; returns the decoded JSON or raises :class:`ConsoleError`."""
        try:
            r = await self._http.request(method, API + path, **kw)
        except httpx.TimeoutException:
            raise Unreachable(f"{self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        return _decode(r, self.url)

    async def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params``."""
        return await self.request("GET", path, params={k: v for k, v in params.items()
                                                       if v not in (None, "")})

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON body."""
        return await self.request("POST", path, json=body or {})

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        """PATCH a JSON body."""
        return await self.request("PATCH", path, json=body)

    async def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return await self.request("DELETE", path)

    async def trace(self, node_url: str, **params: str) -> AsyncIterator[tuple[str, Any]]:
        """Events ``(kind, data)`` of one node's trace stream until it ends.

        Raises :class:`ConsoleError` when the stream cannot be opened; a
        stream that breaks later simply ends (the caller reconnects).
        """
        url = node_url.rstrip("/") + API + "/trace"
        timeout = httpx.Timeout(5.0, read=30.0)  # the server sends keepalives every 10 s
        try:
            async with self._http.stream("GET", url, params=params, timeout=timeout) as r:
                if r.status_code != 200:
                    await r.aread()
                    _decode(r, node_url)
                kind = "message"
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        yield kind, json.loads(line[5:].strip())
                        kind = "message"
        except httpx.HTTPError as exc:
            raise Unreachable(f"trace stream of {node_url}: {exc or type(exc).__name__}") \
                from None


def _decode(r: httpx.Response, url: str) -> Any:
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code == 401:
        raise Unauthorized(
            (body or {}).get("message", "token rejected") + f" by {url}. Pass --token, or "
            "create one with `cloudstorage admin-token create`.")
    if r.status_code >= 400:
        if isinstance(body, dict) and "error" in body:
            raise ApiFailure(r.status_code, body["error"], body.get("message", ""))
        raise ApiFailure(r.status_code, "HTTPError", f"{url} answered {r.status_code}")
    if body is None:
        raise ApiFailure(r.status_code, "BadResponse", f"{url} did not answer with JSON "
                         "(is this a cloudstorage node's web port?)")
    return body
