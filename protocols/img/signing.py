"""Signed ``/api/img`` URLs, for ``<img src>`` where no header can be sent.

A signed URL carries three extra query parameters:

``ak``
    the access key id of the signer (an S3 key pair of the account);
``exp``
    the expiry, unix seconds (at most ``images.signed_url_max_seconds`` ahead);
``sig``
    lower-case hex HMAC-SHA256, keyed with the pair's **secret key**, of::

        GET\\n/api/img/{bucket}/{key}\\n{exp}\\n{ak}\\n{canonical transform query}

    where the path is percent-decoded and the canonical query is the
    transform parameters (every one but ak/exp/sig) sorted by name, as
    ``name=value`` joined with ``&``, values percent-decoded.

The secret key never leaves the client (as in an S3 presigned URL), so a
signature can be made offline; revoking the key, or the signer losing read
access to the bucket, ends every URL it signed.  A signature covers the
exact transform, so a signed thumbnail URL cannot be edited into a request
for the full-size image.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from urllib.parse import urlencode

from protocols.img.errors import ImageError

SIGNATURE_PARAMS = ("ak", "exp", "sig")


class BadSignature(ImageError):
    """The signed URL is malformed, expired or its signature does not match (403)."""

    status = 403
    code = "InvalidSignature"


def string_to_sign(bucket: str, key: str, exp: int, access_key: str,
                   params: Iterable[tuple[str, str]]) -> str:
    """What the signature covers (see the module docstring)."""
    query = "&".join(f"{n}={v}" for n, v in sorted(
        (n, v) for n, v in params if n not in SIGNATURE_PARAMS))
    return f"GET\n/api/img/{bucket}/{key}\n{exp}\n{access_key}\n{query}"


def signature(secret_key: str, text: str) -> str:
    """The hex HMAC-SHA256 of ``text`` under ``secret_key``."""
    return hmac.new(secret_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def sign_query(bucket: str, key: str, params: dict[str, str], access_key: str,
               secret_key: str, expires_in: int = 3600, now: float | None = None) -> str:
    """The query string of a signed URL for these transform ``params``."""
    exp = int((now or time.time()) + expires_in)
    sig = signature(secret_key, string_to_sign(bucket, key, exp, access_key, params.items()))
    return urlencode({**params, "ak": access_key, "exp": str(exp), "sig": sig})


def parse_expiry(raw: str, max_seconds: int, now: float | None = None) -> int:
    """The ``exp`` of a signed URL if it is live and not too far ahead."""
    now = now or time.time()
    if not raw.isdigit() or len(raw) > 12:
        raise BadSignature("exp must be unix seconds")
    exp = int(raw)
    if exp < now:
        raise BadSignature("the signed URL has expired")
    if exp > now + max_seconds + 60:  # a minute of clock skew
        raise BadSignature(f"a signed URL may be valid for at most {max_seconds} seconds")
    return exp


def check_signature(secret_key: str, given: str, text: str) -> None:
    """Raise :class:`BadSignature` unless ``given`` signs ``text`` (constant time)."""
    if not hmac.compare_digest(signature(secret_key, text).encode(), given.lower().encode()):
        raise BadSignature("the signature does not match")
