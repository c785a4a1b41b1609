"""Bucket-name and object-key rules: one rule for every protocol.

S3, the REST dialects, SFTP and the explorer all create buckets and keys; a
name is accepted everywhere or refused everywhere.  The functions here say
*why* a name is refused (sans-I/O, no protocol errors); :func:`check_bucket_name`
and :func:`check_key` raise the storage errors that each protocol maps to its
own format.

Bucket names follow S3's general-purpose rules, with the stricter DNS-safe
reading (no ``.-``/``-.`` either) so every bucket also works virtual-host
style.  Object keys follow S3 (1..1024 UTF-8 bytes) plus one rule of ours: no
``.``/``..`` path segment and no NUL, because keys are also exposed as paths
(SFTP, file-system views) where those would escape or alias directories, and
the metadata database cannot store NUL (PostgreSQL text refuses it).
"""

from __future__ import annotations

import re

from storage import errors

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
    """True when ``name`` is an acceptable bucket name."""
    return bucket_name_problem(name) is None


def key_size(key: str) -> int | None:
    """The key's length in UTF-8 bytes; None if it is not valid UTF-8 (lone
    surrogates from a lenient decoder)."""
    try:
        return len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def key_problem(key: str) -> str | None:
    """Why ``key`` is not an acceptable object key (other than its length:
    see :func:`key_size`), or None if it is."""
    if not key:
        return "Object key must not be empty"
    if key_size(key) is None:
        return "Object key must be valid UTF-8"
    if "\x00" in key:
        return "key must not contain NUL characters"
    if any(segment in (".", "..") for segment in key.split("/")):
        return "Object key must not contain '.' or '..' path segments"
    return None


def check_bucket_name(name: str) -> str:
    """``name`` if it is a valid bucket name, else InvalidBucketName."""
    problem = bucket_name_problem(name)
    if problem is not None:
        raise errors.InvalidBucketName(f"The bucket name {problem}.", bucket=name)
    return name


def check_key(key: str) -> str:
    """``key`` if it is an acceptable object key, else KeyTooLong or InvalidObjectKey."""
    problem = key_problem(key)
    if problem is not None:
        raise errors.InvalidObjectKey(problem + ".", key=key)
    size = key_size(key)
    assert size is not None
    if size > MAX_KEY_BYTES:
        raise errors.KeyTooLong(size=size, max_size=MAX_KEY_BYTES)
    return key
