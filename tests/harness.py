"""Start real node processes on loopback for tests: free ports, temp dirs,
health polled with a deadline (never a fixed sleep)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "cluster.cli"]
START_DEADLINE = 60.0


# Node ports come from below the kernel's ephemeral range (32768 and up on
# Linux): a port the kernel handed out for "any free port" can be taken as
# the source port of some client connection before the node binds it.  Each
# xdist worker gets its own block, so parallel workers never pick the same.
_PORT_BLOCK = 1500
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_PORT_BASE = 20000 + (int(_worker) % 8 if _worker.isdigit() else 0) * _PORT_BLOCK
# Each process starts at its own place in the block, so that two test runs
# at once (two checkouts, a developer and CI) rarely reach for the same port
# between a free check and the node's bind.
_next_port = itertools.count(os.getpid() * 97 % _PORT_BLOCK)


def free_port() -> int:
    """A TCP port nothing listens on right now, from this test worker's block."""
    for _ in range(_PORT_BLOCK):
        port = _PORT_BASE + next(_next_port) % _PORT_BLOCK
        with socket.socket() as s:
            # As the node's own listeners: a port in TIME_WAIT is still usable.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in this test worker's block")


def write_config(
    path: Path, *, node_id: str, data_dir: Path, db_url: str, secret_file: Path,
    zone: str = "dc1", extra: str = "", workers: int = 2,
) -> dict[str, int]:
    """Write a node config with fresh free ports; returns the ports.

    Two worker processes per node unless asked: the suite runs against nodes
    as `[node] workers` runs them on a 2-core machine (the primary relaying
    trace, counters and the secondaries' SQLite commits).
    ``CLOUDSTORAGE_NODE_WORKERS=1`` in the environment overrides it for
    every node: a quicker run against single processes.
    """
    ports = {name: free_port() for name in ("web", "s3", "sftp", "transport")}
    path.write_text(
        f"""
[node]
id = "{node_id}"
zone = "{zone}"
capacity = "10GiB"
data_dir = "{data_dir}"
workers = {workers}

[listen]
host = "127.0.0.1"
web_port = {ports['web']}
s3_port = {ports['s3']}
sftp_port = {ports['sftp']}
transport_port = {ports['transport']}

[metadata]
url = "{db_url}"

[cluster]
secret_file = "{secret_file}"
heartbeat_seconds = 0.5
down_after_seconds = 3
shutdown_grace_seconds = 5
{extra}
"""
    )
    return ports


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``cloudstorage ARGS`` to completion."""
    return subprocess.run(
        [*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def parse_credentials(output: str) -> tuple[str, str]:
    """The key pair printed by ``init`` / ``account create``."""
    ak = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", output)
    sk = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", output)
    if not ak or not sk:
        raise AssertionError(f"no credentials in output:\n{output}")
    return ak.group(1), sk.group(1)


# Nodes started during the current test, whose logs a failure report shows
# (tests/conftest.py): a node's log is kept in the test's temp dir, which
# pytest removes a few runs later.
STARTED: list[NodeProcess] = []


@dataclass
class NodeProcess:
    """A running ``cloudstorage serve`` process."""

    node_id: str
    config: Path
    data_dir: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str
    region: str = "eu-central-1"
    db_url: str = ""
    process: subprocess.Popen[str] | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)
    _log_start: int = 0

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    @property
    def settings(self):
        from config import load_settings

        return load_settings(self.config)

    def start(self) -> None:
        """Start the process and wait until its health endpoint answers."""
        assert self.log is not None
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        logf = open(self.log, "a")  # noqa: SIM115 - handed to the child
        STARTED.append(self)
        self.process = subprocess.Popen(
            [*CLI, "serve", "--config", str(self.config)], cwd=REPO, stdout=logf,
            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        logf.close()
        self.wait_healthy()

    def wait_healthy(self, deadline: float = START_DEADLINE) -> None:
        """Poll ``/health`` until it answers 200 or the deadline passes."""
        end = time.monotonic() + deadline
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.node_id} exited early:\n{self.read_log()}")
            try:
                healthy = httpx.get(f"{self.web_url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                healthy = False
            # The primary answers health before its secondary worker
            # processes serve; it prints its ready line once they all do.
            if healthy and self._printed_ready():
                return
            if time.monotonic() > end:
                raise AssertionError(f"{self.node_id} not healthy in time:\n{self.read_log()}")
            time.sleep(0.1)

    def _printed_ready(self) -> bool:
        if self.log is None or not self.log.exists():
            return True
        with open(self.log, "rb") as f:
            f.seek(self._log_start)
            return f"[{self.node_id}] ready".encode() in f.read()

    def stop(self, sig: int = signal.SIGTERM, deadline: float = 30) -> int:
        """Signal the process and wait for it to exit; returns its status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(deadline)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"{self.node_id} ignored {sig}") from None
        return self.process.returncode

    def kill(self) -> None:
        """``kill -9``."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def read_log(self) -> str:
        return self.log.read_text() if self.log and self.log.exists() else ""

    def create_account(self, email: str, quota: str | None = None) -> tuple[str, str]:
        """Create another tenant; returns its key pair."""
        args = ["account", "create", "--config", str(self.config), "--email", email]
        if quota:
            args += ["--quota", quota]
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
        return parse_credentials(done.stdout)


def prepare_node(
    root: Path, db_url: str, node_id: str = "node1", *, secret_file: Path | None = None,
    zone: str = "dc1", extra: str = "", workers: int = 2,
) -> NodeProcess:
    """Write a config for a node under ``root`` and run ``init`` for it."""
    root.mkdir(parents=True, exist_ok=True)
    secret_file = secret_file or root.parent / "cluster.secret"
    config = root / f"{node_id}.toml"
    ports = write_config(
        config, node_id=node_id, data_dir=root / "data", db_url=db_url,
        secret_file=secret_file, zone=zone, extra=extra, workers=workers,
    )
    done = run_cli("init", "--config", str(config))
    assert done.returncode == 0, done.stderr
    ak, sk = parse_credentials(done.stdout)
    return NodeProcess(node_id=node_id, config=config, data_dir=root / "data", ports=ports,
                       access_key=ak, secret_key=sk, log=root / "node.log", db_url=db_url)


@contextlib.contextmanager
def started_node(root: Path, extra: str = "") -> Iterator[NodeProcess]:
    """A node process (SQLite metadata under ``root``) for the duration of a block."""
    node = prepare_node(root / "node1", f"sqlite://{root / 'meta.sqlite3'}", extra=extra)
    node.start()
    try:
        yield node
    finally:
        node.stop()


class TraceReader:
    """Reads a node's trace stream in a thread, collecting parsed events."""

    def __init__(self, url: str, token: str, **params: str) -> None:
        self.events: list[tuple[str, dict]] = []
        self.connected = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(url, token, params), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "trace stream did not connect"

    def _run(self, url: str, token: str, params: dict[str, str]) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", f"{url}/admin/v1/trace", headers=headers, params=params,
                          timeout=httpx.Timeout(5, read=None)) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in r.iter_lines():
                if self._stop:
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.append((kind, json.loads(line[6:])))
                    if kind == "hello":
                        self.connected.set()
                    if kind == "bye":
                        return

    def requests(self) -> list[dict]:
        return [e for k, e in self.events if k == "request"]

    def close(self) -> None:
        self._stop = True
