"""Bucket-name and object-key validation, raising the S3 errors clients expect.

Bucket names follow S3's general-purpose rules, with the stricter DNS-safe reading
(no ``.-``/``-.`` either) so every bucket also works virtual-host style. Object keys
follow S3 (1..1024 UTF-8 bytes) plus one rule of ours: no ``.``/``..`` path segment
and no NUL, because keys are also exposed as paths (SFTP, file-system views) where
those would escape or alias directories.
"""

from __future__ import annotations

import re

from protocols.s3.errors import S3Error, invalid_argument, key_too_long

MIN_BUCKET_NAME = 3
MAX_BUCKET_NAME = 63
MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IPV4_LIKE_RE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid bucket name, or None if it is."""
    if not MIN_BUCKET_NAME <= len(name) <= MAX_BUCKET_NAME:
        return f"must be {MIN_BUCKET_NAME} to {MAX_BUCKET_NAME} characters long"
    if not name.isascii() or not _BUCKET_RE.fullmatch(name):
        return (
            "may contain only lowercase letters, digits, dots and hyphens, and must "
            "begin and end with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "must not contain '..', '.-' or '-.'"
    if _IPV4_LIKE_RE.fullmatch(name):
        return "must not be formatted as an IP address"
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with '{prefix}'"
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"must not end with '{suffix}'"
    return None


def is_valid_bucket_name(name: str) -> bool:
    """True when ``name`` passes :func:`validate_bucket_name`."""
    return bucket_name_problem(name) is None


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName (400, with BucketName) unless ``name`` is valid."""
    problem = bucket_name_problem(name)
    if problem is not None:
        raise S3Error(
            "InvalidBucketName",
            extra={"BucketName": name},
            detail=f"bucket name {problem}",
        )


def validate_object_key(key: str) -> None:
    """Raise unless ``key`` is an acceptable object key.

    KeyTooLongError over 1024 UTF-8 bytes; InvalidArgument for an empty key, a key
    that is not valid UTF-8 (lone surrogates from a lenient decoder), a NUL, or a
    ``.``/``..`` path segment.
    """
    if not key:
        raise invalid_argument("Object key must not be empty", "key", key)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise invalid_argument("Object key must be valid UTF-8", "key") from None
    if size > MAX_KEY_BYTES:
        raise key_too_long(size, MAX_KEY_BYTES)
    refuse_nul(key, "key")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise invalid_argument("Object key must not contain '.' or '..' path segments", "key", key)


def validate_key_prefix(prefix: str, name: str = "prefix") -> None:
    """Check a listing parameter (``prefix``, ``marker``, ``start-after``, ...):
    at most 1024 UTF-8 bytes without NUL (segments may be partial, so ``.``/``..``
    are allowed here).  ``name`` is the parameter the error names."""
    try:
        size = len(prefix.encode("utf-8"))
    except UnicodeEncodeError:
        raise invalid_argument("Value must be valid UTF-8", name) from None
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
