"""The ``link`` of a v1-pro file: a signed URL that streams the file without a key.

``/api/v1/link/<id>/<name>?expires=<unix>&signature=<hex>``: ``id`` is the
file id of the Simple REST API (bucket and key), the signature an
HMAC-SHA256 over id and expiry with a key derived from the cluster secret,
so any node can check it and nobody without the secret can make one.  A
link stops working when it expires (``v1pro.link_ttl_seconds``, a week by
default); it reads whatever version is current when it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import time
from urllib.parse import quote

from storage.crypto import constant_time_equals, derive_key


class LinkSigner:
    """Makes and checks signed file links."""

    def __init__(self, cluster_secret: bytes, ttl_seconds: int) -> None:
        self._key = derive_key(cluster_secret, "v1pro-file-link")
        self.ttl = ttl_seconds

    def _sign(self, fid: str, expires: int) -> str:
        return hmac.new(self._key, f"{fid}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def link(self, base_url: str, fid: str, key: str, now: float | None = None) -> str:
        """The URL of the file ``fid`` (``key`` names it) under ``base_url``."""
        expires = int((time.time() if now is None else now) + self.ttl)
        name = quote(posixpath.basename(key) or "file")
        return (f"{base_url.rstrip('/')}/api/v1/link/{fid}/{name}"
                f"?expires={expires}&signature={self._sign(fid, expires)}")

    def valid(self, fid: str, expires: str, signature: str) -> bool:
        """Whether the signature is right and the link has not expired."""
        if not expires.isdigit() or len(expires) > 12 or int(expires) < time.time():
            return False
        return constant_time_equals(signature, self._sign(fid, int(expires)))
