"""A node with several worker processes (``[node] workers = 2``), as run for real.

The client ports but SFTP's are shared by the primary and a secondary process
(SO_REUSEPORT): these tests open many connections and check, through the live
trace (each event names the worker that served it), that both processes
serve, that what belongs to the node stays whole (one trace, one admin API,
one rate limit, one SQLite database written by both), and that the
processes live and die together.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import paramiko
import pytest
from botocore.config import Config as BotoConfig

from tests.harness import NodeProcess, TraceReader, prepare_node
from tests.rest.conftest import signup

PER_MINUTE = 30
DEADLINE = 30.0


def poll(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Wait until ``check()`` holds (polled, never a fixed sleep)."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_node(root: Path, extra: str = "") -> NodeProcess:
    node = prepare_node(root / "node1", f"sqlite://{root / 'meta.sqlite3'}", extra=extra,
                        workers=2)
    node.start()
    return node


def token_of(node: NodeProcess) -> str:
    return node.settings.console_token_file().read_text().strip()


def s3_client(node: NodeProcess) -> object:
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=node.access_key, aws_secret_access_key=node.secret_key,
        config=BotoConfig(max_pool_connections=32, retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    root = tmp_path_factory.mktemp("workers")
    # The S3 limits are lifted: the concurrent writes are about the
    # database, and would otherwise meet SlowDown first.
    running = start_node(root, f"\n[accounts]\ndashboard_requests_per_minute = {PER_MINUTE}\n"
                               "s3_writes_per_second = 0\ns3_reads_per_second = 0\n")
    try:
        yield running
    finally:
        running.stop()


def served_by(reader: TraceReader, protocol: str) -> set[int]:
    return {e["worker"] for e in reader.requests() if e["protocol"] == protocol}


def test_both_processes_serve_and_the_trace_shows_them(node: NodeProcess) -> None:
    assert node.process is not None
    assert len(children(node.process.pid)) == 1  # the secondary
    reader = TraceReader(node.web_url, token_of(node), protocol="s3")
    try:
        # Each request on a new connection: the kernel spreads connections,
        # not requests.  A stream that reached the secondary was relayed from
        # the primary, which sees the events of both.
        def both() -> bool:
            for _ in range(8):
                assert httpx.get(f"{node.s3_url}/").status_code == 403
            return served_by(reader, "s3") == {0, 1}

        poll(both, "requests served by both worker processes in the trace")
    finally:
        reader.close()


def test_admin_api_is_the_primarys_on_every_connection(node: NodeProcess) -> None:
    assert node.process is not None
    headers = {"Authorization": f"Bearer {token_of(node)}"}
    pids = {httpx.get(f"{node.web_url}/admin/v1/node", headers=headers).json()["pid"]
            for _ in range(16)}
    assert pids == {node.process.pid}
    # Unauthenticated, a proxied request gets the admin API's own refusal.
    answers = [httpx.get(f"{node.web_url}/admin/v1/node") for _ in range(8)]
    assert {r.status_code for r in answers} == {401}
    assert {r.json()["error"] for r in answers} == {"Unauthorized"}


def test_request_rates_count_every_process(node: NodeProcess) -> None:
    headers = {"Authorization": f"Bearer {token_of(node)}"}

    def s3_total() -> int:
        stats = httpx.get(f"{node.web_url}/admin/v1/node", headers=headers).json()["requests"]
        return int(stats["requests_total"])

    before = s3_total()
    for _ in range(40):
        httpx.get(f"{node.s3_url}/")
    # Secondaries send their counters once a second.
    poll(lambda: s3_total() >= before + 40, "the counters of both processes")


def test_concurrent_writes_through_both_processes(node: NodeProcess) -> None:
    s3 = s3_client(node)
    s3.create_bucket(Bucket="two-writers")  # type: ignore[attr-defined]
    reader = TraceReader(node.web_url, token_of(node), protocol="s3")
    try:
        def put(i: int) -> int:
            # Small objects are rows of the SQLite database, bigger ones chunks.
            body = os.urandom(1000 if i % 2 else 70_000)
            answer = s3.put_object(Bucket="two-writers", Key=f"k{i}", Body=body)  # type: ignore[attr-defined]
            return int(answer["ResponseMetadata"]["HTTPStatusCode"])

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(put, range(200)))
        assert codes == [200] * 200
        listed = s3.list_objects_v2(Bucket="two-writers")  # type: ignore[attr-defined]
        assert listed["KeyCount"] == 200
        poll(lambda: {e["worker"] for e in reader.requests()
                      if e["operation"] == "PutObject" and e["status"] == 200} == {0, 1},
             "writes served by both processes in the trace")
    finally:
        reader.close()


def test_rate_limit_holds_across_processes(node: NodeProcess) -> None:
    user = signup(node)
    cookie = user.client.cookies["session"]
    reader = TraceReader(node.web_url, token_of(node), protocol="web")
    try:
        started = time.monotonic()
        # A new connection each: spread over both processes.
        codes = [httpx.get(f"{node.web_url}/api/auth/me", cookies={"session": cookie}).status_code
                 for _ in range(3 * PER_MINUTE)]
        elapsed = time.monotonic() - started
        poll(lambda: served_by(reader, "web") == {0, 1}, "web requests on both processes")
    finally:
        reader.close()
        user.client.close()
    allowed = codes.count(200)
    assert set(codes) <= {200, 429}, codes
    # The node's limit, not each process's: each admits its half.
    assert PER_MINUTE // 2 <= allowed <= PER_MINUTE + math.ceil(PER_MINUTE * elapsed / 60), (
        allowed, elapsed)


def listening_sockets(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def sockets_of(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[8:-1])
    return found


def test_sftp_is_served_by_the_primary_alone(node: NodeProcess) -> None:
    # cluster/secondary.py: a session on a secondary would relay every small
    # file's commit to the primary.
    assert node.process is not None
    (secondary,) = children(node.process.pid)
    port = node.ports["sftp"]
    assert listening_sockets(port) & sockets_of(node.process.pid)
    assert not listening_sockets(port) & sockets_of(secondary)
    assert listening_sockets(node.ports["s3"]) & sockets_of(secondary)  # S3 is shared
    user = signup(node)
    r = user.client.post("/api/sftp", json={"password": "sftp-password-1"})
    assert r.status_code == 200, r.text
    reader = TraceReader(node.web_url, token_of(node), protocol="sftp")
    try:
        for i in range(12):  # a connection each: the kernel would spread them
            t = paramiko.Transport(("127.0.0.1", port))
            try:
                t.connect(username=r.json()["username"], password="sftp-password-1")
                sftp = paramiko.SFTPClient.from_transport(t)
                assert sftp is not None
                sftp.mkdir(f"/{user.bucket}/d{i}")
            finally:
                t.close()
        poll(lambda: sum(e["operation"] == "Mkdir" for e in reader.requests()) == 12,
             "the trace of every SFTP session")
        assert served_by(reader, "sftp") == {0}
    finally:
        reader.close()
        user.client.close()


def test_a_killed_secondary_is_restarted_and_shutdown_leaves_nothing(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    try:
        assert node.process is not None
        primary = node.process.pid
        (first,) = children(primary)
        os.kill(first, signal.SIGKILL)
        poll(lambda: "worker 1 exited unexpectedly (killed by SIGKILL)" in node.read_log(),
             "the supervisor to notice")
        poll(lambda: len(children(primary) - {first}) == 1, "a new secondary")
        (second,) = children(primary)
        poll(lambda: "worker 1 serving again" in node.read_log(), "the restarted secondary")
        s3 = s3_client(node)

        def serves() -> bool:
            try:
                s3.list_buckets()  # type: ignore[attr-defined]
            except Exception:
                return False
            return True

        poll(serves, "the node to serve again")
    finally:
        node.stop()
    assert not alive(second)
    assert not children(primary)


def test_secondaries_exit_when_the_primary_dies(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    assert node.process is not None
    (secondary,) = children(node.process.pid)
    node.kill()
    poll(lambda: not alive(secondary), "the orphaned secondary to exit")


def test_link_dirs_of_dead_primaries_are_removed(tmp_path: Path) -> None:
    from cluster.supervisor import remove_stale_link_dirs

    # A dead primary's directory: its socket file is left, nobody listens.
    dead = tmp_path / "cloudstorage-n1-dead"
    dead.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(dead / "link.sock"))
    # A live primary's: listening.
    live = tmp_path / "cloudstorage-n1-live"
    live.mkdir()
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(live / "link.sock"))
    listening.listen()
    # A primary that is still starting: no socket yet, but young.
    young = tmp_path / "cloudstorage-n1-young"
    young.mkdir()
    old = time.time() - 3600
    for path in (dead, live):
        os.utime(path, (old, old))
    try:
        assert remove_stale_link_dirs(tmp_path, "cloudstorage-n1-") == 1
    finally:
        listening.close()
    assert not dead.exists() and live.exists() and young.exists()
