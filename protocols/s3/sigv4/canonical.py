"""SigV4 primitives and the canonical request (URI, query, headers), as S3
builds them over the wire bytes.
"""

import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_to_bytes

from protocols.s3.sigv4.model import (
    _AMZ_DATE_RE,
    TERMINATOR,
)
from storage.bounded import BoundedMemo

# ====================================================================================
# Primitives
# ====================================================================================


@functools.lru_cache(maxsize=1024)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key (cached: it changes once a day per key and region)."""
    k_date = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    k_region = hmac.new(k_date, region.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_region, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, TERMINATOR.encode(), hashlib.sha256).digest()


# HMAC states keyed with a signing key, by that key (as secret as the
# signing keys signing_key() keeps; bounded, emptied when full).
_KEYED: BoundedMemo[bytes, hmac.HMAC] = BoundedMemo(1024)


def hmac_hex(key: bytes, message: str) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``: the signature of a string to sign."""
    # A copy of a state already keyed: OpenSSL's one-shot hmac.digest looks
    # the digest up by name and pads the key every time (cachegrind: 28,400
    # against 21,600 instructions).  A signing key serves a client all day,
    # and a streaming upload's every chunk.
    keyed = _KEYED.get(key)
    if keyed is None:
        keyed = _KEYED.keep(key, hmac.new(key, digestmod=hashlib.sha256))
    mac = keyed.copy()
    mac.update(message.encode("utf-8", "surrogateescape"))
    return mac.hexdigest()


# The last timestamp parsed: requests signed in the same second share it.
_last_amz_date: tuple[str, dt.datetime] = ("", dt.datetime.min)


def parse_amz_date(value: str) -> dt.datetime:
    """Parse ``YYYYMMDDTHHMMSSZ`` into an aware UTC datetime (ValueError if invalid)."""
    global _last_amz_date
    last = _last_amz_date
    if value == last[0]:
        return last[1]
    if not _AMZ_DATE_RE.fullmatch(value):
        raise ValueError(f"not an ISO 8601 basic timestamp: {value!r}")
    # By hand: strptime costs more than the rest of parsing a request's auth.
    parsed = dt.datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                         int(value[11:13]), int(value[13:15]), tzinfo=dt.UTC)
    _last_amz_date = (value, parsed)
    return parsed


def format_amz_date(moment: dt.datetime) -> str:
    """Format a datetime (naive means UTC) as ``YYYYMMDDTHHMMSSZ``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encoding_table(safe: str) -> list[str]:
    unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~" + safe
    return [chr(b) if chr(b) in unreserved else f"%{b:02X}" for b in range(256)]


# What each byte becomes: urllib's quote() builds its answer byte by byte in
# a Python comprehension (1.2 us for a short key); a table lookup per byte
# in map() costs a fifth of that.
_ENCODE = _encoding_table("").__getitem__
_ENCODE_KEEP_SLASH = _encoding_table("/").__getitem__


def uri_encode(value: str | bytes, *, encode_slash: bool = True) -> str:
    """AWS's UriEncode: every byte but ``A-Za-z0-9-._~`` (and ``/`` if kept) as %XY."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return "".join(map(_ENCODE if encode_slash else _ENCODE_KEEP_SLASH, value))


# ====================================================================================
# Canonical request
# ====================================================================================


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 normalisation as the generic SigV4 suite (and botocore) apply it.
    output: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str | bytes, *, s3: bool = True) -> str:
    """The canonical URI of a request path as received on the wire.

    S3 (``s3=True``): the path is percent-decoded and re-encoded once with AWS's
    unreserved set, slashes kept, no dot-segment processing (keys may contain ``..``).
    Other services (``s3=False``): dot segments and repeated slashes are removed and
    the path as received is encoded again (the suite's "double encoding").
    """
    raw = raw_path if isinstance(raw_path, bytes) else raw_path.encode("utf-8", "surrogateescape")
    if s3:
        return uri_encode(unquote_to_bytes(raw), encode_slash=False) or "/"
    normalized = _remove_dot_segments(raw.decode("utf-8", "surrogateescape")) or "/"
    return uri_encode(normalized, encode_slash=False)


QueryInput = str | bytes | Iterable[tuple[str, str]] | None


def _query_pairs_bytes(query: QueryInput) -> list[tuple[bytes, bytes]]:
    if query is None:
        return []
    if isinstance(query, str):
        query = query.encode("utf-8", "surrogateescape")
    if isinstance(query, bytes):
        pairs = []
        for part in query.split(b"&"):
            if not part:
                continue
            name, _, value = part.partition(b"=")
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
        return pairs
    return [
        (n.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for n, v in query
    ]


def parse_query(query: str | bytes) -> list[tuple[str, str]]:
    """Split a raw query string into decoded ``(name, value)`` pairs, in order.

    ``+`` stays a plus (SigV4 clients encode spaces as ``%20``); a name without ``=``
    gets an empty value.
    """
    return [
        (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
        for n, v in _query_pairs_bytes(query)
    ]


def canonical_query_string(query: QueryInput, *, exclude: Iterable[str] = ()) -> str:
    """Canonical query string: names and values URI-encoded, sorted by name then value.

    ``query`` is the raw query string (str/bytes) or decoded ``(name, value)`` pairs.
    Names listed in ``exclude`` (``X-Amz-Signature`` for presigned URLs) are dropped.
    """
    if not query:
        return ""
    excluded = {e.encode() for e in exclude}
    encoded = sorted(
        (uri_encode(n), uri_encode(v)) for n, v in _query_pairs_bytes(query) if n not in excluded
    )
    return "&".join(f"{n}={v}" for n, v in encoded)


class WireHeaders(dict[str, list[str]]):
    """A :func:`header_multimap` already made (by the S3 request parser, in
    the pass that decodes its headers): passed to :func:`parse_request_auth`
    as its headers, it is used as it is instead of being built again."""


HeaderInput = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]

_WS_RE = re.compile(r"[ \t\r\n\f\v]+")


def _wire_text(value: str | bytes) -> str:
    # Recover the wire bytes (latin-1 round trip) and carry them in a str that encodes
    # back to exactly those bytes (utf-8 + surrogateescape), so hashing sees the wire.
    if isinstance(value, str):
        try:
            wire = value.encode("latin-1")
        except UnicodeEncodeError:
            return value  # already real text (not from a latin-1 decoding server)
    else:
        wire = value
    return wire.decode("utf-8", "surrogateescape")


def header_multimap(headers: HeaderInput | WireHeaders) -> dict[str, list[str]]:
    """Lower-cased header names mapped to their values in order (repeats kept)."""
    if isinstance(headers, WireHeaders):
        return headers
    given: HeaderInput = headers
    items = given.items() if isinstance(given, Mapping) else given
    result: dict[str, list[str]] = {}
    for name, value in items:
        result.setdefault(name.strip().lower(), []).append(_wire_text(value))
    return result


def _canonical_value(value: str) -> str:
    value = value.strip(" \t\r\n\f\v")
    # Collapsing is a no-op without two spaces in a row or another kind of
    # whitespace (non-printable): two C scans rule that out for most values,
    # cheaper than a regex search.
    if "  " in value or not value.isprintable():
        return _WS_RE.sub(" ", value)
    return value


def canonical_header_value(values: Iterable[str]) -> str:
    """Trim each value, collapse inner whitespace runs to one space, join with commas."""
    if type(values) is list and len(values) == 1:
        return _canonical_value(values[0])  # nearly every header: no list to join
    return ",".join([_canonical_value(v) for v in values])


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, list[str]],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """Assemble the canonical request from its parts: ``uri`` and ``query`` already in
    canonical form (:func:`canonical_uri`, :func:`canonical_query_string`), ``headers``
    is a :func:`header_multimap`; ``signed_headers`` are lower-case names in
    the order the client listed them (sorted, for conforming clients).
    """
    names = tuple(signed_headers)  # the same tuple when given one
    lines = []
    for name in names:
        values = headers.get(name, [])
        value = _canonical_value(values[0]) if len(values) == 1 else canonical_header_value(values)
        lines.append(f"{name}:{value}\n")
    return "\n".join([method.upper(), uri, query, "".join(lines), ";".join(names),
                      payload_hash])


