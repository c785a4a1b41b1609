"""The v2-objects routes (seed 003): paths mapped to the endpoints of
handlers.py, with this dialect's error format and rate-limit headers on
every answer."""

from __future__ import annotations

from quart import Blueprint, Response, g

from protocols.rest.common import ApiError, check_request_params
from protocols.rest.v2objects.errors import V2Error, from_api_error, from_storage
from protocols.rest.v2objects.handlers import V2ObjectsApi
from storage import errors, events
from storage.core import StorageCore


async def _from_v2() -> None:
    # In the request's own task, so its changes are attributed to this surface.
    events.set_origin("v2objects")


def create_v2objects_blueprint(services: StorageCore) -> Blueprint:
    """The ``/v2/buckets`` routes."""
    bp = Blueprint("v2objects", __name__)
    bp.before_request(check_request_params)
    bp.before_request(_from_v2)
    api = V2ObjectsApi(services)

    @bp.errorhandler(V2Error)
    async def v2_error(exc: V2Error) -> Response:
        return exc.response()

    @bp.errorhandler(ApiError)
    async def shared_error(exc: ApiError) -> Response:
        return from_api_error(exc).response()

    @bp.errorhandler(errors.StorageError)
    async def storage_error(exc: errors.StorageError) -> Response:
        return from_storage(exc).response()

    @bp.after_request
    async def rate_headers(response: Response) -> Response:
        # Every answer to an identified caller carries its window, errors too.
        for name, value in g.get("v2_rate_headers", {}).items():
            response.headers[name] = value
        return response

    objects = "/v2/buckets/<bucket>/objects"
    bp.add_url_rule(f"{objects}/<path:key>", "put_object", api.put_object, methods=["PUT"])
    bp.add_url_rule(f"{objects}/<path:key>", "get_object", api.get_object, methods=["GET"])
    bp.add_url_rule(f"{objects}/<path:key>", "delete_object", api.delete_object,
                    methods=["DELETE"])
    bp.add_url_rule(objects, "list_objects", api.list_objects, methods=["GET"])
    bp.add_url_rule("/v2/buckets", "create_bucket", api.create_bucket, methods=["POST"])
    bp.add_url_rule("/v2/buckets/<bucket>", "delete_bucket", api.delete_bucket,
                    methods=["DELETE"])
    return bp
