"""An SFTP-enabled user on a shared node, and helpers for the real clients."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from tests.harness import NodeProcess, started_node
from tests.rest.conftest import User, signup

SFTP_PASSWORD = "sftp-password-1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A real node process on free ports (SQLite metadata)."""
    extra = "[accounts]\nlogin_attempts_per_minute = 200\n[sftp]\nlogin_attempts_per_minute = 5\n"
    with started_node(tmp_path_factory.mktemp("sftpnode"), extra) as n:
        yield n


@dataclass
class SftpUser:
    """A signed-up user with SFTP enabled."""

    user: User
    username: str
    port: int


@pytest.fixture
def sftp_user(node: NodeProcess) -> Iterator[SftpUser]:
    u = signup(node)
    r = u.client.post("/api/sftp", json={"password": SFTP_PASSWORD})
    assert r.status_code == 200, r.text
    yield SftpUser(u, r.json()["username"], r.json()["port"])
    u.client.close()


def paramiko_client(su: SftpUser, password: str = SFTP_PASSWORD) -> paramiko.SFTPClient:
    """A paramiko SFTP session (password auth)."""
    t = paramiko.Transport(("127.0.0.1", su.port))
    t.connect(username=su.username, password=password)
    return paramiko.SFTPClient.from_transport(t)


def openssh_sftp(su: SftpUser, batch: str, tmp: Path, *, timeout: float = 600,
                 extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run OpenSSH's ``sftp`` in batch mode, authenticating with a key that is
    registered through the API (batch mode disables password prompts)."""
    if not shutil.which("sftp") or not shutil.which("ssh-keygen"):
        pytest.fail("openssh-client is required (apt-get install openssh-client)")
    key = tmp / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True, capture_output=True)
        pub = (tmp / "id_ed25519.pub").read_text()
        r = su.user.client.post("/api/sftp/keys", json={"publicKey": pub, "name": "test"})
        assert r.status_code == 201, r.text
    script = tmp / "batch.txt"
    script.write_text(batch)
    return subprocess.run(
        ["sftp", "-b", str(script), "-P", str(su.port), "-i", str(key),
         "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=accept-new",
         "-o", f"UserKnownHostsFile={tmp / 'known_hosts'}", *extra,
         f"{su.username}@127.0.0.1"],
        capture_output=True, text=True, timeout=timeout, cwd=tmp,
    )
