"""Conditional requests (If-Match & co. on reads and writes), ranges and HTTP dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from protocols.s3 import xml as s3xml
from protocols.s3.errors import S3Error, not_implemented
from storage.objects import ObjectInfo, WriteCondition

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(moment: dt.datetime) -> str:
    """RFC 7231 date (``Wed, 21 Oct 2015 07:28:00 GMT``) of an aware datetime."""
    # By hand: email.utils' formatter costs several times this, on every GET.
    t = moment if moment.tzinfo is dt.UTC else moment.astimezone(dt.UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


def _parse_http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # S3 ignores a condition whose date it cannot read
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or s3xml.unquote_etag(c.removeprefix("W/")) == etag:
            return True
    return False


def evaluate_conditions(
    info: ObjectInfo,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    *,
    read: bool = True,
) -> None:
    """Apply S3's conditional-request rules; raise PreconditionFailed/NotModified.

    Precedence as S3 documents it: If-Match decides alone when present (an
    If-Unmodified-Since that would fail is then ignored), likewise
    If-None-Match over If-Modified-Since.  ``read`` is False for the
    copy-source conditions, where every failure is 412.
    """
    modified = info.last_modified.replace(microsecond=0)
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    else:
        since = _parse_http_date(if_unmodified_since)
        if since is not None and modified > since:
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Unmodified-Since"})
    if if_none_match is not None:
        if _etag_matches(if_none_match, info.etag):
            if read:
                raise S3Error("NotModified", headers={"ETag": s3xml.quote_etag(info.etag)})
            raise S3Error("PreconditionFailed", extra={"Condition": "If-None-Match"})
    else:
        since = _parse_http_date(if_modified_since)
        if since is not None and modified <= since:
            if read:
                raise S3Error("NotModified", headers={"ETag": s3xml.quote_etag(info.etag)})
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Modified-Since"})


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """The If-Match / If-None-Match of a conditional write (PUT, copy, complete).

    S3 writes take only ``If-None-Match: *`` ("create, never overwrite");
    any other value is a feature S3 does not have, so 501 rather than a
    silently unconditional write.
    """
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    if if_match is None and if_none_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match with a value other than *")
    etags = _etag_set(if_match) if if_match is not None else None
    return WriteCondition(if_match=etags, if_none_match=if_none_match is not None)


def _etag_set(header: str) -> frozenset[str]:
    """The ETags of an If-Match value (``*`` kept as is), unquoted."""
    return frozenset(
        c if c == "*" else s3xml.unquote_etag(c.removeprefix("W/"))
        for c in (part.strip() for part in header.split(",")) if c
    )


def delete_condition(if_match: str | None, *, size: object = None,
                     last_modified: object = None) -> WriteCondition | None:
    """The condition of a conditional delete (DeleteObject's headers, or one
    object of DeleteObjects): ``If-Match`` with ETags or ``*``.

    S3 evaluates it against the key's current version, in the delete's own
    transaction: 412 PreconditionFailed on another ETag, 404 NoSuchKey when
    there is none.  The size / last-modified-time conditions S3 documents for
    directory buckets are not implemented here (501), never silently ignored.
    """
    if size is not None or last_modified is not None:
        raise not_implemented("Conditional deletes by size or last-modified time")
    if if_match is None:
        return None
    return WriteCondition(if_match=_etag_set(if_match))


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` / ``a-`` / ``-n`` -> ``(start, stop)`` (stop exclusive).

    A header S3 would ignore (not bytes, several ranges, unparsable, last < first)
    gives None (the whole object); an unsatisfiable one raises InvalidRange.
    """
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not sep or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise _invalid_range(value, size)
        return max(0, size - n), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _invalid_range(value, size)
    stop = min(int(last) + 1, size) if last else size
    return start, stop


def _invalid_range(value: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        extra={"RangeRequested": value, "ActualObjectSize": size},
        headers={"Content-Range": f"bytes */{size}"},
    )
