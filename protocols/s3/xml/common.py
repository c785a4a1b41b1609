"""S3 XML: the namespace, request-body limits and the small formatting helpers
that rendering and parsing share.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from protocols.s3.errors import invalid_encoding_type

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Request-body caps. Configuration documents are tiny; DeleteObjects (1000 keys of up
# to 1024 bytes, escaped) and CompleteMultipartUpload (10000 parts with checksums)
# legitimately reach a few MiB.
MAX_XML_BODY_SIZE = 1 << 20
MAX_DELETE_BODY_SIZE = 4 << 20
MAX_COMPLETE_BODY_SIZE = 4 << 20

# S3's CORS configuration is at most 64 KB.
MAX_CORS_BODY_SIZE = 64 << 10

MAX_XML_DEPTH = 32
MAX_DELETE_OBJECTS = 1000
MAX_PART_NUMBER = 10000

# S3's tag limits (lengths in characters).
MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

MAX_CORS_RULES = 100
CORS_METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")


# ====================================================================================
# Values
# ====================================================================================


def format_timestamp(value: dt.datetime | float) -> str:
    """Format a time the way S3 XML does: ``2006-02-27T12:34:56.000Z`` (UTC, millis).

    ``value`` is an aware or naive (taken as UTC) datetime, or POSIX seconds.
    """
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    m = moment.astimezone(dt.UTC)
    # By hand: strftime costs several times this, once per listed key.
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond // 1000:03d}Z")


def quote_etag(etag: str) -> str:
    """Return ``etag`` wrapped in double quotes exactly once (``abc`` -> ``"abc"``)."""
    return '"' + etag.strip().strip('"') + '"'


def unquote_etag(etag: str) -> str:
    """Return ``etag`` without surrounding whitespace and double quotes."""
    return etag.strip().strip('"')


def parse_encoding_type(value: str | None) -> bool:
    """Validate a list request's ``encoding-type``; True when keys must be url-encoded.

    Only ``url`` exists; anything else is AWS's InvalidArgument.
    """
    if value is None:
        return False
    if value.lower() != "url":
        raise invalid_encoding_type(value)
    return True


def url_encode(value: str) -> str:
    """Percent-encode a key/prefix for ``encoding-type=url`` responses.

    Space becomes ``%20`` and ``+`` becomes ``%2B``, which every SDK decoder reads back
    correctly (botocore uses unquote_plus, Go uses QueryUnescape, JS decodeURIComponent).
    """
    return quote(value, safe="/")


# Text escaping: XML specials, plus characters XML 1.0 cannot carry raw. CR is escaped
# so that it survives the parser's newline normalisation.
_ESCAPES: dict[int, str] = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}
_ESCAPES.update({c: f"&#x{c:X};" for c in range(0x20) if c not in (0x09, 0x0A)})


def escape_text(text: str) -> str:
    """Escape ``text`` for use as XML character data."""
    return text.translate(_ESCAPES)


