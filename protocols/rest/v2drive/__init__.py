"""The v2-drive dialect (seed 004): ``cs_*`` keys, files, folders, users, audit logs."""

from protocols.rest.v2drive.routes import create_v2drive_blueprint

__all__ = ["create_v2drive_blueprint"]
