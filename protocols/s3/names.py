"""Bucket-name and object-key validation, raising the S3 errors clients expect.

The rules themselves live in :mod:`storage.names` (one rule for every
protocol); this module only words a refusal as S3 does: InvalidBucketName
with the BucketName, KeyTooLongError with Size and MaxSizeAllowed,
InvalidArgument naming the parameter.  Listing parameters (prefixes,
markers) and NUL checks of other request text are S3-specific and stay here.
"""

from __future__ import annotations

from protocols.s3.errors import S3Error, invalid_argument, key_too_long
from storage.names import (
    MAX_BUCKET_NAME,
    MAX_KEY_BYTES,
    MIN_BUCKET_NAME,
    bucket_name_problem,
    is_valid_bucket_name,
    key_problem,
    key_size,
)

__all__ = [
    "MAX_BUCKET_NAME", "MAX_KEY_BYTES", "MIN_BUCKET_NAME", "bucket_name_problem",
    "is_valid_bucket_name", "refuse_nul", "validate_bucket_name", "validate_key_prefix",
    "validate_object_key",
]


def invalid_bucket_name(name: str, problem: str) -> S3Error:
    """400 InvalidBucketName carrying the BucketName, as S3 answers."""
    return S3Error("InvalidBucketName", extra={"BucketName": name},
                   detail=f"bucket name {problem}")


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName (400, with BucketName) unless ``name`` is valid."""
    problem = bucket_name_problem(name)
    if problem is not None:
        raise invalid_bucket_name(name, problem)


def validate_object_key(key: str) -> None:
    """Raise unless ``key`` is an acceptable object key.

    KeyTooLongError over 1024 UTF-8 bytes; InvalidArgument for an empty key, a key
    that is not valid UTF-8 (lone surrogates from a lenient decoder), a NUL, or a
    ``.``/``..`` path segment.  The length is judged before the other rules, as
    S3 does (a too-long key is KeyTooLongError whatever else is wrong with it).
    """
    size = key_size(key)
    if key and size is not None and size > MAX_KEY_BYTES:
        raise key_too_long(size, MAX_KEY_BYTES)
    problem = key_problem(key)
    if problem is not None:
        # The value is not echoed when it cannot be: an XML document cannot
        # hold a NUL or a lone surrogate.
        echo = key if size is not None and "\x00" not in key else None
        raise invalid_argument(problem, "key", echo)


def validate_key_prefix(prefix: str, name: str = "prefix") -> None:
    """Check a listing parameter (``prefix``, ``marker``, ``start-after``, ...):
    at most 1024 UTF-8 bytes without NUL (segments may be partial, so ``.``/``..``
    are allowed here).  ``name`` is the parameter the error names."""
    size = key_size(prefix)
    if size is None:
        raise invalid_argument("Value must be valid UTF-8", name)
    if size > MAX_KEY_BYTES:
        raise key_too_long(size, MAX_KEY_BYTES)
    refuse_nul(prefix, name)


def refuse_nul(value: str, name: str) -> None:
    """InvalidArgument naming ``name`` if ``value`` holds a NUL character.

    S3 itself takes any Unicode in keys, but the metadata database cannot
    (PostgreSQL text and jsonb refuse NUL) and XML 1.0 cannot carry it in a
    listing, so it is refused wherever a client's text could be stored or
    looked up.  The value is not echoed: the error document could not hold it.
    """
    if "\x00" in value:
        raise invalid_argument(f"{name} must not contain NUL characters", name)
