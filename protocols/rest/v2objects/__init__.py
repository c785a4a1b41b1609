"""The v2-objects dialect (seed 003): ``/v2/buckets/{bucket}/objects/{key}``."""

from protocols.rest.v2objects.routes import create_v2objects_blueprint

__all__ = ["create_v2objects_blueprint"]
