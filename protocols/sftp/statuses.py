"""SFTP statuses: storage-core errors mapped to SFTP errors, and to trace statuses.

SFTP has few statuses; what has none of its own is a failure carrying the message.
An unexpected error is logged here and the client sees a plain "Internal error".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncssh

from protocols.sftp.paths import BadPath
from storage import errors

log = logging.getLogger("cloudstorage.sftp")


# SFTP has few statuses: what has none of its own is a failure with the message.
_KIND_ERRORS: dict[errors.Kind, Callable[[str], asyncssh.SFTPError]] = {
    errors.Kind.FORBIDDEN: asyncssh.SFTPPermissionDenied,
    errors.Kind.INVALID: asyncssh.SFTPInvalidParameter,
}


def sftp_error(exc: BaseException) -> asyncssh.SFTPError:
    """The SFTP status for an error of the storage core."""
    if isinstance(exc, asyncssh.SFTPError):
        return exc
    if isinstance(exc, BadPath):
        return asyncssh.SFTPNoSuchFile(str(exc))
    if isinstance(exc, errors.StorageError) and exc.kind is errors.Kind.NOT_FOUND:
        return asyncssh.SFTPNoSuchFile("No such file or directory")
    if isinstance(exc, errors.QuotaExceeded):
        return asyncssh.SFTPFailure("Quota exceeded: the upload would exceed your storage quota")
    if isinstance(exc, errors.BucketNotEmpty):
        return asyncssh.SFTPFailure("Directory not empty")
    if isinstance(exc, errors.BucketAlreadyExists | errors.BucketAlreadyOwnedByYou):
        return asyncssh.SFTPFailure("A bucket with this name already exists")
    if isinstance(exc, errors.StorageError) and exc.kind is not errors.Kind.INTERNAL:
        return _KIND_ERRORS.get(exc.kind, asyncssh.SFTPFailure)(exc.message)
    log.error("SFTP operation failed", exc_info=exc)
    return InternalFailure("Internal error")


class InternalFailure(asyncssh.SFTPFailure):
    """An unexpected server-side error (the client sees a plain failure)."""


def trace_status(exc: asyncssh.SFTPError) -> int:
    """An HTTP-like status for the trace, so filters like ``status:4xx`` work."""
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return 404
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return 403
    if isinstance(exc, asyncssh.SFTPOpUnsupported):
        return 501
    return 500 if isinstance(exc, InternalFailure) else 400
