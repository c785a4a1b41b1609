"""The v1-pro dialect (seed 002): ``csb_live_`` keys, uploads, URL imports, listings."""

from protocols.rest.v1pro.keys import create_v1pro_keys_blueprint
from protocols.rest.v1pro.routes import create_v1pro_blueprint

__all__ = ["create_v1pro_blueprint", "create_v1pro_keys_blueprint"]
