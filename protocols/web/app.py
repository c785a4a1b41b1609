"""The quart-trio application served on a node's web port."""

from __future__ import annotations

from typing import Any

from quart import jsonify
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from cluster.services import NodeServices

VERSION = "0.1.0"


def create_web_app(services: NodeServices) -> QuartTrio:
    """Build the web app over a node's services."""
    app = QuartTrio("cloudstorage-web")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    settings = services.settings

    @app.get("/health")
    async def health() -> Any:
        # Healthy means: the process serves and its metadata database answers.
        try:
            await services.db.run(_ping)
        except Exception as exc:
            return jsonify(status="degraded", node=settings.node.id, error=str(exc)), 503
        return jsonify(
            status="ok", node=settings.node.id, zone=settings.node.zone, version=VERSION
        )

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.name, message=exc.description, status=exc.code), exc.code

    @app.errorhandler(Exception)
    async def internal_error(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        return jsonify(error="InternalError", message="An internal error occurred."), 500

    return app


async def _ping() -> None:
    from tortoise import connections

    await connections.get("default").execute_query("SELECT 1")
