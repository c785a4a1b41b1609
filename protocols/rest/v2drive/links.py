"""Signed URLs of v2-drive: presigned uploads and download links.

``/v2/presigned/<file_id>?expires=<unix>&sig=<hex>`` takes the bytes of a
file created by ``POST /v2/files`` (within 15 minutes, as the document
says); ``/v2/dl/<file_id>?expires=<unix>&token=<hex>`` streams a file
without a key (the ``download_url`` of a file, valid an hour).  Each is an
HMAC-SHA256 over purpose, id and expiry with a key derived from the cluster
secret, so any node can check it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from storage.crypto import constant_time_equals, derive_key

UPLOAD_TTL = 15 * 60
DOWNLOAD_TTL = 60 * 60


class Signer:
    """Makes and checks the signed URLs."""

    def __init__(self, cluster_secret: bytes) -> None:
        self._key = derive_key(cluster_secret, "v2drive-links")

    def sign(self, purpose: str, file_id: str, expires: int) -> str:
        """The signature of one URL."""
        msg = f"{purpose}\n{file_id}\n{expires}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def upload_url(self, base: str, file_id: str, expires: int) -> str:
        """The presigned upload URL of a pending file."""
        return (f"{base}/v2/presigned/{file_id}?expires={expires}"
                f"&sig={self.sign('upload', file_id, expires)}")

    def download_url(self, base: str, file_id: str) -> str:
        """A download link of a file, valid :data:`DOWNLOAD_TTL` seconds."""
        expires = int(time.time()) + DOWNLOAD_TTL
        return (f"{base}/v2/dl/{file_id}?expires={expires}"
                f"&token={self.sign('download', file_id, expires)}")

    def valid(self, purpose: str, file_id: str, expires: str, signature: str) -> bool:
        """Whether a URL's signature holds and it has not expired."""
        if not expires.isdigit() or len(expires) > 12 or int(expires) < time.time():
            return False
        return constant_time_equals(signature, self.sign(purpose, file_id, int(expires)))
