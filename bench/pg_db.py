"""A throwaway PostgreSQL database for a benchmark node, made with ``psql``."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from urllib.parse import parse_qs, urlsplit, urlunsplit


def _psql(admin_url: str, statement: str) -> None:
    parts = urlsplit(admin_url)
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("--postgres needs the psql client")
    subprocess.run(
        [psql, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
         "-U", parts.username or "postgres", "-d", parts.path.lstrip("/") or "postgres",
         "-v", "ON_ERROR_STOP=1", "-qc", statement],
        check=True, capture_output=True, timeout=60,
        env=dict(os.environ, PGPASSWORD=parts.password or ""),
    )


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A fresh database on ``admin_url``'s server: (its name, its URL)."""
    name = f"cs_bench_{secrets.token_hex(5)}"
    _psql(admin_url, f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    return name, urlunsplit(parts._replace(path=f"/{name}"))


def drop_pg_database(admin_url: str, name: str) -> None:
    """Drop a database :func:`create_pg_database` made."""
    _psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def transport(url: str) -> str:
    """How a node reaches the server of ``url``: a Unix socket when its
    ``host`` is a directory (``postgres://user@/db?host=/var/run/postgresql``,
    for a server on the same machine), else TCP."""
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
    if host.startswith("/"):
        return f"Unix socket in {host}"
    return f"TCP to {host}:{parts.port or 5432}"
