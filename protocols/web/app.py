"""The quart-trio application served on a node's web port.

Besides ``/health`` it mounts the JSON surfaces of :mod:`protocols.rest`.

Request bodies stream with back-pressure: Quart's stock connection appends
every received piece to the request body without waiting for the handler to
consume it, so a slow consumer (the object store) would let a fast client
fill memory with a whole upload.  :class:`_BoundedHTTPConnection` stops
reading from the socket while more than ``BODY_HIGH_WATER`` bytes wait.
It also gives a stalled body a deadline, as the S3 port does: when no body
bytes arrive for ``listen.body_timeout_seconds``, reading the body raises a
408 RequestTimeout in the handler (answered as the JSON error) and the
connection is closed, since its framing is lost.
"""

from __future__ import annotations

import math
from typing import Any

import trio
from quart import jsonify, request
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest
from werkzeug.exceptions import HTTPException, RequestTimeout

from protocols import VERSION
from protocols.admin.api import create_admin_blueprint
from protocols.admin.control import ClusterControl
from protocols.img.endpoint import create_images_blueprint
from protocols.rest.billing import create_billing_blueprint
from protocols.rest.common import ApiError, error_response
from protocols.rest.dashboard import create_dashboard_blueprint
from protocols.rest.files import create_files_blueprint
from protocols.rest.session import SessionGate
from protocols.rest.shares import create_shares_blueprint
from protocols.rest.teams import create_teams_blueprint
from protocols.rest.v1pro import create_v1pro_blueprint, create_v1pro_keys_blueprint
from protocols.rest.v2drive import create_v2drive_blueprint
from protocols.rest.v2objects import create_v2objects_blueprint
from protocols.rest.versions import create_versions_blueprint
from protocols.rest.webhooks import create_webhooks_blueprint
from storage import errors, events
from storage.core import StorageCore

HEALTH_RETRY_AFTER = 5
BODY_HIGH_WATER = 1024 * 1024


class _BoundedBody(TrioBody):
    """A request body whose producer can wait until the consumer has drained it."""

    def __init__(self, expected: int | None, maximum: int | None) -> None:
        super().__init__(expected, maximum)
        self._room = trio.Event()

    async def __anext__(self) -> bytes:
        try:
            data = await super().__anext__()
        except StopAsyncIteration:
            # A failure set while the reader waited must not look like the end
            # of the body (a truncated chunked upload would be stored).
            if self._must_raise is not None:
                raise self._must_raise from None
            raise
        self._room.set()
        return data

    @property
    def complete(self) -> bool:
        """Whether the whole body has arrived (or reading it failed)."""
        return self._complete.is_set()

    def fail(self, exc: Exception) -> None:
        """Make the handler's next (or current) read raise ``exc``."""
        self._must_raise = exc
        self.set_complete()

    async def wait_for_room(self) -> None:
        while (len(self._data) >= BODY_HIGH_WATER and self._must_raise is None
               and not self._complete.is_set()):
            self._room = trio.Event()
            await self._room.wait()


class _BoundedRequest(TrioRequest):
    # A subclass with the same interface (quart types the attribute as its own class).
    body_class = _BoundedBody  # type: ignore[assignment]


class _BoundedHTTPConnection(TrioASGIHTTPConnection):
    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Any, receive: Any
    ) -> None:
        stall = getattr(self.app, "body_timeout", None) or math.inf
        while True:
            # Only a body still to come has a deadline: once it is complete the
            # loop merely waits for the disconnect, however long a response takes.
            message = None
            with trio.move_on_after(math.inf if request.body.complete else stall):
                message = await receive()
            if message is None:  # the body stalled: refuse it, let the handler answer
                request.body.fail(RequestTimeout(
                    f"No request body bytes arrived for {stall:g} seconds."))
                return
            if message["type"] == "http.request":
                request.body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    request.body.set_complete()
                else:
                    await request.body.wait_for_room()
            elif message["type"] == "http.disconnect":
                break
        nursery.cancel_scope.cancel()


class WebApp(QuartTrio):
    """QuartTrio with back-pressured request bodies."""

    asgi_http_class = _BoundedHTTPConnection
    request_class = _BoundedRequest
    body_timeout: float | None = None  # seconds a request body may stall


def create_web_app(services: StorageCore, control: ClusterControl) -> QuartTrio:
    """Build the web app over a node's storage core and cluster control."""
    app = WebApp("cloudstorage-web")
    # Uploads stream and are limited by the routes themselves (REST upload
    # limit, quotas); JSON bodies are read with their own small cap.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = None
    app.config["RESPONSE_TIMEOUT"] = None
    settings = services.settings
    app.body_timeout = settings.listen.body_timeout_seconds

    @app.get("/health")
    async def health() -> Any:
        # Ready means: the metadata database answers and enough nodes are up
        # to store new data; otherwise 503 naming what is down.
        down = await services.unavailable_parts()
        if down:
            return jsonify(
                status="unavailable", node=settings.node.id, zone=settings.node.zone,
                version=VERSION, down=down,
            ), 503, {"Retry-After": str(HEALTH_RETRY_AFTER)}
        return jsonify(
            status="ok", node=settings.node.id, zone=settings.node.zone, version=VERSION
        )

    @app.before_request
    async def remember_client() -> None:
        # The changes of every REST dialect carry the request's client (the
        # audit log's ip_address / user_agent); each blueprint then names
        # its origin with events.set_origin, which keeps this client.
        events.set_origin("", request.remote_addr or "", request.headers.get("User-Agent", ""))

    # One session check and one per-account request limit for every
    # dashboard endpoint (protocols/rest/session.py).
    gate = SessionGate(services)
    app.register_blueprint(create_dashboard_blueprint(services, gate))
    app.register_blueprint(create_files_blueprint(services))
    app.register_blueprint(create_shares_blueprint(services, gate))
    app.register_blueprint(create_images_blueprint(services))
    app.register_blueprint(create_teams_blueprint(services, gate))
    app.register_blueprint(create_billing_blueprint(services, gate))
    app.register_blueprint(create_v1pro_blueprint(services))
    app.register_blueprint(create_v1pro_keys_blueprint(services, gate))
    app.register_blueprint(create_v2objects_blueprint(services))
    app.register_blueprint(create_v2drive_blueprint(services, gate))
    app.register_blueprint(create_webhooks_blueprint(services, gate))
    app.register_blueprint(create_versions_blueprint(services, gate))
    app.register_blueprint(create_admin_blueprint(services, control))

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Any:
        return error_response(exc)

    @app.errorhandler(errors.ServiceUnavailable)
    async def unavailable(exc: errors.ServiceUnavailable) -> Any:
        # Not an internal error: logged (once per cause, rate-limited) where
        # it was detected, answered 503 with a hint of when to retry.
        from protocols.rest.common import from_storage

        return error_response(from_storage(exc))

    @app.errorhandler(errors.StorageError)
    async def storage_error(exc: errors.StorageError) -> Any:
        from protocols.rest.common import from_storage

        mapped = from_storage(exc)
        if mapped.status >= 500:
            app.logger.exception("storage error")
        return error_response(mapped)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        code = (exc.name or "Error").replace(" ", "")
        return jsonify(error=code, message=exc.description, status=exc.code), exc.code

    @app.errorhandler(Exception)
    async def internal_error(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        return jsonify(error="InternalError", message="An internal error occurred."), 500

    return app
