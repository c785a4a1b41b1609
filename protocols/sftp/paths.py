"""Strict mapping of SFTP paths onto ``(bucket, key)``.

Paths are normalised lexically against ``/`` (the only working directory a
session has): ``.`` and ``..`` segments are resolved, so ``..`` can never
climb above the account's root, and the result is ``/``, ``/bucket`` or
``/bucket/key/parts``.  NUL bytes, invalid UTF-8 and over-long keys are
refused.  Every operation then asks the core's authorization whether the
session's account may act on the bucket.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from storage import names


class BadPath(ValueError):
    """The path cannot name anything in the store."""


@dataclass(frozen=True)
class Target:
    """What a path names: the root, a bucket, or a key (file or folder) in one."""

    bucket: str | None
    key: str

    @property
    def is_root(self) -> bool:
        return self.bucket is None

    @property
    def path(self) -> str:
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"


def normalize(raw: bytes) -> str:
    """The absolute, normalised form of a client path."""
    if b"\x00" in raw:
        raise BadPath("paths must not contain NUL")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("paths must be UTF-8") from None
    norm = posixpath.normpath(posixpath.join("/", text))
    # normpath keeps a leading "//" (POSIX allows it to be special); we do not.
    return "/" + norm.lstrip("/")


def resolve(raw: bytes) -> Target:
    """Map a client path to a :class:`Target`."""
    norm = normalize(raw)
    if norm == "/":
        return Target(None, "")
    bucket, _, key = norm[1:].partition("/")
    if len(key.encode()) > names.MAX_KEY_BYTES:
        raise BadPath("the key is too long")
    return Target(bucket, key)
