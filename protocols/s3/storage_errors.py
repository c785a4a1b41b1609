"""Storage-core errors as the S3 errors clients expect.

The core raises protocol-neutral :class:`storage.errors.StorageError`\\ s; this
is the one place that words them for S3 (codes, statuses, the extra elements
and headers of the XML error document).
"""

from __future__ import annotations

from protocols.s3.errors import (
    ERROR_TABLE,
    S3Error,
    entity_too_small,
    invalid_argument,
    key_too_long,
)
from storage import errors as serr
from storage.multipart import EntityTooSmall

# Storage codes S3 has no code of its own for.
_STORAGE_CODES = {
    "AccountSuspended": "AccessDenied",
    "AccountExists": "InvalidRequest",
    "TooManyAccessKeys": "InvalidRequest",
}


def _int(value: object) -> int:
    """An integer detail of a storage error (0 when absent)."""
    return value if isinstance(value, int) else 0


def _name_error(exc: serr.StorageError) -> S3Error | None:
    """The S3 form of a refused bucket name or object key (storage/names.py),
    the same error protocols/s3/names.py raises for the same name."""
    if isinstance(exc, serr.InvalidBucketName):
        bucket = str(exc.details.get("bucket", ""))
        return S3Error("InvalidBucketName", extra={"BucketName": bucket}, detail=exc.message)
    if isinstance(exc, serr.KeyTooLong):
        return key_too_long(_int(exc.details.get("size")), _int(exc.details.get("max_size")))
    if isinstance(exc, serr.InvalidObjectKey):
        return invalid_argument(exc.message.rstrip(".") or "Invalid object key", "key")
    return None


def from_storage_error(exc: serr.StorageError) -> S3Error:
    """Translate a storage-core error into the S3 error clients expect."""
    named = _name_error(exc)
    if named is not None:
        return named
    code = _STORAGE_CODES.get(exc.code, exc.code)
    headers: dict[str, str] = {}
    extra: dict[str, object] = {}
    if isinstance(exc, serr.NoSuchKey) and exc.details.get("delete_marker"):
        headers["x-amz-delete-marker"] = "true"
        headers["x-amz-version-id"] = str(exc.details.get("version_id"))
    if isinstance(exc, serr.NoSuchVersion):
        extra["VersionId"] = exc.details.get("version_id", "")
    if isinstance(exc, serr.PreconditionFailed):
        extra["Condition"] = exc.details.get("condition", "")
    if isinstance(exc, serr.ServiceUnavailable):
        # 503 ServiceUnavailable, which AWS SDKs retry; Retry-After says when.
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, EntityTooSmall):
        err = entity_too_small(
            _int(exc.details.get("proposed_size")), _int(exc.details.get("min_size"))
        )
        err.extra["PartNumber"] = str(exc.details.get("part_number", ""))
        return err
    if code not in ERROR_TABLE:
        return S3Error("InternalError", detail=f"{exc.code}: {exc.message}")
    message = exc.message if code in ("TooManyBuckets", "IncompleteBody") else None
    return S3Error(code, message, extra=extra, headers=headers, detail=exc.message)
