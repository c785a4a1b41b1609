"""Admin-API tokens: created once, stored only as SHA-256 hashes, checked in
constant time.

The token file holds one token per line::

    sha256:<64 hex> <scope> <created ISO time> <name...>

``scope`` is ``write`` (every endpoint) or ``read`` (GET endpoints only).
Tokens are long random strings, so a plain SHA-256 (not a slow password hash)
is the right tool: nothing to brute-force, and checking stays cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from config import ConfigError, Settings

TOKEN_PREFIX = "csadm_"
SCOPES = ("read", "write")


@dataclass(frozen=True)
class TokenEntry:
    """One accepted token (its hash, never the token)."""

    digest: str  # "sha256:<hex>"
    scope: str
    name: str = ""
    created: str = ""


def hash_token(token: str) -> str:
    """The stored form of ``token``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_token_file(text: str) -> list[TokenEntry]:
    """The entries of a token file (blank lines and ``#`` comments skipped)."""
    entries = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=3)
        if not parts or parts[0].startswith("#") or not parts[0].startswith("sha256:"):
            continue
        scope = parts[1] if len(parts) > 1 and parts[1] in SCOPES else "read"
        entries.append(TokenEntry(parts[0], scope, parts[3] if len(parts) > 3 else "",
                                  parts[2] if len(parts) > 2 else ""))
    return entries


def append_token(path: Path, name: str = "", scope: str = "write") -> str:
    """Create a token, append its hash to ``path`` (mode 0600) and return it."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    token = new_token()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{hash_token(token)} {scope} {created} {name.strip() or '-'}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line)
    return token


def ensure_console_token(settings: Settings) -> Path | None:
    """Make sure the local console has a token (``cloudstorage init``).

    Writes a new write-scope token to :meth:`Settings.console_token_file`
    (mode 0600, next to the cluster secret) unless that file already holds a
    token that the token file still accepts.  Returns the file, or None when
    no token file can be derived from the settings.
    """
    hashes = settings.admin_token_file()
    console = settings.console_token_file()
    if hashes is None or console is None:
        return None
    if console.exists():
        existing = console.read_text().strip()
        known = parse_token_file(hashes.read_text()) if hashes.exists() else []
        if existing and any(hmac.compare_digest(e.digest, hash_token(existing)) for e in known):
            return console
    token = append_token(hashes, "local console (cloudstorage init)", "write")
    console.parent.mkdir(parents=True, exist_ok=True)
    tmp = console.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    tmp.replace(console)
    return console


class TokenStore:
    """The tokens a node accepts: ``admin.tokens`` plus the token file, which
    is re-read whenever its modification time changes (new tokens work
    without a restart)."""

    def __init__(self, settings: Settings) -> None:
        self._static = [TokenEntry(d, "write", "config") for d in settings.admin.tokens]
        self._path = settings.admin_token_file()
        self._stamp: tuple[int, int] | None = None
        self._from_file: list[TokenEntry] = []

    def _refresh(self) -> None:
        if self._path is None:
            return
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._from_file = None, []
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._from_file = parse_token_file(self._path.read_text())
            except OSError as exc:
                raise ConfigError(f"admin.token_file: cannot read {self._path}") from exc
            self._stamp = stamp

    def check(self, token: str) -> TokenEntry | None:
        """The entry matching ``token``, or None.  Every entry is compared
        (constant time per entry, no early exit) so timing reveals nothing."""
        self._refresh()
        digest = hash_token(token)
        found = None
        for entry in [*self._static, *self._from_file]:
            if hmac.compare_digest(entry.digest, digest) and found is None:
                found = entry
        return found

    def count(self) -> int:
        """How many tokens are accepted."""
        self._refresh()
        return len(self._static) + len(self._from_file)
