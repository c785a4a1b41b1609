"""AES-GCM packet encryption of an SSH connection with one cipher object per key.

asyncssh's AES-GCM shim builds a new ``AESGCM`` object for every packet it
encrypts or decrypts, and ``cryptography`` then sets the cipher context up
again each time.  Measured on the 2-core machine: decrypting a 32 KiB packet
took 21.8 us that way, 12.3 us with one object kept for the key; encrypting
a 28-byte SFTP status, 4.5 us against 2.1.  A 256 MiB upload is about 8,000
packets received.

:func:`reuse_gcm_ciphers` swaps a connection's asyncssh ``GCMCipher``
objects, receive and send, for :class:`KeptGCMCipher` ones with the same key
and the same nonce state, which compute exactly the same bytes.  New keys
(the first key exchange, a rekey) bring new asyncssh objects: call it
again whenever data arrives and it swaps those, between two packets.
"""

from __future__ import annotations

from typing import Any

from asyncssh.crypto.cipher import GCMCipher
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_GCM_MAC_SIZE = 16


class KeptGCMCipher(GCMCipher):
    """asyncssh's ``GCMCipher`` keeping its ``AESGCM`` object for its key."""

    def __init__(self, old: GCMCipher) -> None:
        # Not super().__init__: the state (key, next nonce) is the old object's.
        self._cipher = old._cipher
        self._key = old._key
        self._iv = old._iv
        self._aead = AESGCM(old._key)

    def encrypt_and_sign(self, header: bytes, data: bytes) -> tuple[bytes, bytes]:
        """Encrypt and sign a packet, as ``GCMCipher.encrypt_and_sign``."""
        sealed = self._aead.encrypt(self._iv, data, header)
        self._update_iv()
        return header + sealed[:-_GCM_MAC_SIZE], sealed[-_GCM_MAC_SIZE:]

    def verify_and_decrypt(self, header: bytes, data: bytes, mac: bytes) -> bytes | None:
        """Verify and decrypt a packet, as ``GCMCipher.verify_and_decrypt``."""
        try:
            plain: bytes | None = self._aead.decrypt(self._iv, data + mac, header)
        except InvalidTag:
            plain = None
        self._update_iv()
        return plain


def _swap(encryption: Any) -> None:
    cipher = getattr(encryption, "_cipher", None)
    if type(cipher) is GCMCipher:
        encryption._cipher = KeptGCMCipher(cipher)


def reuse_gcm_ciphers(conn: Any) -> None:
    """Give the connection's AES-GCM encryption, both ways, a kept cipher
    object (a no-op for other ciphers and for ciphers already swapped)."""
    _swap(conn._recv_encryption)  # asyncssh internals
    _swap(conn._send_encryption)
