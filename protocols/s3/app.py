"""The S3 endpoint: a plain ASGI application over the storage core.

A plain ASGI callable rather than a Quart app, because the S3 port is the hot
path (thousands of small GETs and PUTs per second) and every layer of
framework costs there.  hypercorn's trio worker serves it.

One request goes: parse the address (path-style or virtual-host style) ->
resolve the operation once (:mod:`protocols.s3.router`) -> SigV4 (header or
presigned query) -> per-key rate limit -> the operation's handler, looked up
in :data:`protocols.s3.ops.HANDLERS` (one module per operation family).
Request bodies stream through :class:`~protocols.s3.body.BodyReader`, which
decodes aws-chunked framing, checks chunk signatures, the signed SHA-256 and
every ``x-amz-checksum-*`` / trailer checksum while the bytes flow, and
raises at the end of the body -- before the object service commits -- so a
bad upload never becomes visible.

This module keeps what is the same for every operation: ASGI, authentication,
CORS headers on answers to browsers, and errors.  Every failure is answered
with S3's XML error document and an ``x-amz-request-id``; unexpected
exceptions are logged, never shown.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from protocols.s3 import xml as s3xml
from protocols.s3.context import DEFAULT_RATE_LIMITS, Ctx, S3Services, vhost_domains
from protocols.s3.errors import S3Error, access_denied
from protocols.s3.names import validate_object_key
from protocols.s3.ops import HANDLERS
from protocols.s3.ops.common import refuse_unsupported_headers
from protocols.s3.ops.cors import cors_headers
from protocols.s3.request import Receive, Request, Response, Scope, Send, xml_response
from protocols.s3.router import (
    NOT_IMPLEMENTED_OPS,
    UNSUPPORTED_SUBRESOURCES,
    Op,
    rate_class,
    resolve,
)
from protocols.s3.sigv4 import parse_request_auth, verify
from protocols.s3.storage_errors import from_storage_error
from storage import errors as serr
from storage.blobs import ChunkError
from storage.core import StorageCore
from storage.events import MAX_IP, MAX_USER_AGENT, current_origin, set_origin

__all__ = ["DEFAULT_RATE_LIMITS", "S3App", "create_s3_app"]

log = logging.getLogger("cloudstorage.s3")

# Query parameters that make a GET/HEAD of a key something other than reading it.
_NOT_PLAIN_OBJECT_READ = UNSUPPORTED_SUBRESOURCES | {"uploadId"}
# Operations that come without SigV4 headers: a preflight is never signed, a
# form upload's credentials are form fields.
_UNSIGNED_OPS = frozenset({Op.PREFLIGHT, Op.POST_OBJECT})


class _RequestIds:
    """S3's ``x-amz-request-id``: 16 random upper-case hex digits a request.

    Drawn from a pool of random bytes filled 512 ids at a time: one
    ``secrets.token_hex`` a request was a ``getrandom`` system call each.
    """

    _BATCH = 512

    def __init__(self) -> None:
        self._pool = ""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._pool):
            self._pool = secrets.token_hex(8 * self._BATCH).upper()
            at = 0
        self._at = at + 16
        return self._pool[at:at + 16]


class _BodyFailedFirst(Exception):
    """A response body's first piece failed before anything was sent."""


class S3App:
    """The S3 ASGI application of one node."""

    def __init__(
        self, core: StorageCore, *, rate_limits: Mapping[str, float] | None = None
    ) -> None:
        self.node = S3Services(core, rate_limits)
        self.max_header_bytes = core.settings.listen.max_header_bytes
        self.vhost_domains = vhost_domains(core)
        self.request_ids = _RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The changes this request makes are S3's (storage.events), by this
        # client; a connection's task serves only this port, so setting it is enough.
        client = scope.get("client")
        ip = str(client[0])[:MAX_IP] if client else ""
        agent = next((v for k, v in scope["headers"] if k == b"user-agent"),
                     b"").decode("latin-1")[:MAX_USER_AGENT]
        now = current_origin()
        if now != "s3" or now.ip != ip or now.user_agent != agent:
            # Set once per connection, as a rule (its task serves this port only).
            set_origin("s3", ip, agent)
        request_id = self.request_ids.next()
        req: Request | None = None
        try:
            req = Request(scope, receive, self.vhost_domains)
            response = await self._handle(req)
        except Exception as exc:
            response = await self._error_response(exc, req, request_id, scope)
        response.headers.append(("x-amz-request-id", request_id))
        try:
            await self._send(response, send, head=scope["method"] == "HEAD")
        except _BodyFailedFirst as failed:
            # Nothing was sent yet: the client still gets a proper S3 error
            # (503 when the nodes holding the data are unreachable).
            assert isinstance(failed.__cause__, Exception)
            response = await self._error_response(failed.__cause__, req, request_id, scope)
            response.headers.append(("x-amz-request-id", request_id))
            await self._send(response, send, head=scope["method"] == "HEAD")

    async def _error_response(
        self, exc: Exception, req: Request | None, request_id: str, scope: Scope
    ) -> Response:
        if isinstance(exc, S3Error):
            err = exc
        elif isinstance(exc, serr.StorageError):
            err = from_storage_error(exc)
        elif isinstance(exc, ChunkError):
            log.error("S3 %s %s: %s", scope.get("method"), scope.get("path"), exc)
            err = S3Error("InternalError", detail=str(exc))
        else:
            log.exception("S3 %s %s failed", scope.get("method"), scope.get("path"))
            err = S3Error("InternalError", detail=repr(exc))
        if err.resource is None and req is not None:
            err.resource = req.resource
        headers = list(err.headers.items())
        if req is not None and not await req.drain():
            headers.append(("connection", "close"))
        if err.status == 304:
            return Response(304, headers)
        return xml_response(s3xml.render_error(err, request_id), err.status, headers)

    async def _send(self, response: Response, send: Send, *, head: bool) -> None:
        headers = [(n.encode("latin-1"), v.encode("utf-8")) for n, v in response.headers]
        if response.stream is None:
            if not any(n == b"content-length" for n, _ in headers) and response.status != 304:
                headers.append((b"content-length", str(len(response.body)).encode()))
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else response.body})
            return
        stream = response.stream
        # Fetch the first piece before committing to a status, so a missing
        # chunk is still a proper 500 rather than a cut connection.
        try:
            first = await anext(stream, b"")
        except Exception as exc:
            await stream.aclose()
            raise _BodyFailedFirst() from exc
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            async for piece in stream:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except ConnectionError:
            raise  # the client left: nothing to report
        except Exception:
            # Headers are gone: all we can do is cut the connection (by raising)
            # so the client sees a short body instead of a silently wrong one.
            log.exception("S3 GET body failed mid-stream")
            raise
        finally:
            await stream.aclose()
        await send({"type": "http.response.body", "body": b""})

    async def _authenticate(self, ctx: Ctx) -> None:
        """Verify the request's SigV4 signature and record the requester in ``ctx``."""
        req = ctx.req
        auth = parse_request_auth(req.method, req.raw_path, req.query_string, req.wire_headers)
        if auth is None:
            raise access_denied("Anonymous access is not allowed; sign your requests (SigV4).")
        # One round trip: the key and its account, the request's bucket and,
        # for a plain GET/HEAD of an object, the object itself.
        want_object = bool(req.key) and req.method in ("GET", "HEAD") and (
            _NOT_PLAIN_OBJECT_READ.isdisjoint(req.query))
        record, loaded, secret = await self.node.load_key(req, auth.access_key,
                                                          want_object=want_object)
        signing = verify(auth, secret)
        ctx.authenticated(auth.access_key, record.account, signing, loaded)

    async def _handle(self, req: Request) -> Response:
        size = sum(len(n) + len(v) + 4 for n, v in req.raw_headers)
        if size > self.max_header_bytes:
            raise S3Error("RequestHeaderSectionTooLarge",
                          extra={"MaxSizeAllowed": self.max_header_bytes})
        req.refuse_nul()
        op = req.op = resolve(req.method, req.bucket, req.key, req.query, req.headers)
        notes = req.trace_notes
        if notes is not None:
            # The trace middleware reports these after the app ran.
            notes["operation"] = op.value
            notes["bucket"] = req.bucket
            notes["key"] = req.key
        ctx = Ctx(self.node, req, op)
        if op not in _UNSIGNED_OPS:
            await self._authenticate(ctx)
            self.node.limiter.check(ctx.access_key, rate_class(op, req.method))
            if op not in NOT_IMPLEMENTED_OPS:
                self._check_request(req)
        route = HANDLERS[op](ctx)
        origin = req.headers.get("origin")
        if not origin or not req.bucket or op is Op.PREFLIGHT:
            return await route
        # Browsers only let a page read an error that carries CORS headers too.
        try:
            response = await route
        except S3Error as exc:
            exc.headers.update(await cors_headers(ctx, origin))
            raise
        except serr.StorageError as exc:
            err = from_storage_error(exc)
            err.headers.update(await cors_headers(ctx, origin))
            raise err from exc
        response.headers += (await cors_headers(ctx, origin)).items()
        return response

    @staticmethod
    def _check_request(req: Request) -> None:
        """What every signed operation refuses before its handler runs."""
        if req.method in ("PUT", "POST"):
            refuse_unsupported_headers(req.headers)
        if req.key:
            validate_object_key(req.key)


def create_s3_app(
    core: StorageCore, *, rate_limits: Mapping[str, float] | None = None
) -> S3App:
    """Build the S3 ASGI application over a node's storage core.

    ``rate_limits`` overrides the per-key requests per second of the
    ``write``/``read``/``list`` classes (0 disables one); by default they come
    from the node settings, else :data:`DEFAULT_RATE_LIMITS`.
    """
    return S3App(core, rate_limits=rate_limits)
