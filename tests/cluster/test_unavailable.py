"""Unavailable is not internal: a lost write quorum or an unreachable metadata
database answers 503 with Retry-After on every protocol (never a 500), /health
says what is down, and the node logs a bounded number of lines, not a
traceback per request."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import paramiko
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from storage.ratelog import ThrottledLog
from tests.cluster.replication_support import (
    CHUNK,
    chunk_path,
    node_extra,
    payload,
    start_nodes,
    stop_nodes,
)
from tests.cluster.tcp_proxy import TcpProxy
from tests.conftest import PG_BASE
from tests.harness import NodeProcess

THREE = [("node1", "dc1"), ("node2", "dc1"), ("node3", "dc1")]


def s3_client(node: NodeProcess):
    """boto3 against ``node`` with no retries: the first answer is the one checked."""
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=node.access_key, aws_secret_access_key=node.secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def poll(condition, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def s3_error(call) -> ClientError:
    """The ClientError ``call()`` raises (failing if it succeeds)."""
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def assert_s3_unavailable(err: ClientError) -> None:
    meta = err.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 503, err.response
    assert err.response["Error"]["Code"] == "ServiceUnavailable"
    assert int(meta["HTTPHeaders"]["retry-after"]) > 0


def assert_json_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "ServiceUnavailable" and body["status"] == 503 and body["message"]
    assert int(r.headers["retry-after"]) > 0


def health(node: NodeProcess) -> httpx.Response:
    return httpx.get(f"{node.web_url}/health", timeout=10)


def log_lines_after(node: NodeProcess, mark: int) -> list[str]:
    return node.read_log()[mark:].splitlines()


def test_throttled_log_writes_one_line_per_cause_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("test.throttle"), 10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for _ in range(100):
            throttled.log("database", "database down")
        throttled.log("write quorum", "quorum lost")
        now[0] = 10.5
        throttled.log("database", "database down")
    assert [r.getMessage() for r in caplog.records] == [
        "database down", "quorum lost", "database down (99 more like this held back)"]


@pytest.mark.slow
def test_write_quorum_lost_is_503_on_s3_and_rest_and_health_says_so(tmp_path: Path) -> None:
    nodes = start_nodes(tmp_path, f"sqlite://{tmp_path / 'meta.sqlite3'}", THREE,
                        node_extra(3))
    survivor, *victims = nodes
    s3 = s3_client(survivor)
    try:
        def layout_ready() -> bool:
            try:
                s3.put_object(Bucket="default", Key="probe", Body=payload(0, CHUNK + 1))
                return True
            except ClientError:
                return False

        poll(layout_ready, 60, "the first layout")
        assert health(survivor).status_code == 200
        # An object whose only reachable copy will be gone: the survivor's
        # own chunk files are removed, the other holders killed.
        stranded = payload(7, CHUNK + 1)
        s3.put_object(Bucket="default", Key="stranded", Body=stranded)
        for piece in (stranded[:CHUNK], stranded[CHUNK:]):
            chunk_path(survivor, hashlib.sha256(piece).hexdigest()).unlink()
        mark = len(survivor.read_log())
        for victim in victims:
            victim.kill()
        # Its holders are unreachable, not its data lost: 503, not 500.
        assert_s3_unavailable(s3_error(lambda: s3.get_object(Bucket="default",
                                                             Key="stranded")))
        # The REST download alike (its id is the base64 of "default/stranded").
        assert_json_unavailable(httpx.get(
            f"{survivor.web_url}/api/v1/files/ZGVmYXVsdC9zdHJhbmRlZA", timeout=30,
            headers={"X-API-Key": f"{survivor.access_key}:{survivor.secret_key}"}))
        # Bigger than the inline threshold: the bytes need w = 2 replicas.
        for i in range(20):
            err = s3_error(lambda i=i: s3.put_object(Bucket="default", Key=f"k{i}",
                                                     Body=payload(i, 2 * CHUNK)))
            assert_s3_unavailable(err)
        r = httpx.post(f"{survivor.web_url}/api/v1/files", params={"key": "rest-file"},
                       content=payload(1, 2 * CHUNK), timeout=30,
                       headers={"X-API-Key": f"{survivor.access_key}:{survivor.secret_key}"})
        assert_json_unavailable(r)
        # Reads of what was stored before still work from the surviving copy.
        assert s3.get_object(Bucket="default", Key="probe")["Body"].read()

        # Once the heartbeats are stale, /health names the lost quorum.
        def quorum_reported() -> bool:
            r = health(survivor)
            return r.status_code == 503 and "write quorum" in r.json()["down"]

        poll(quorum_reported, 30, "/health to report the lost write quorum")
        r = health(survivor)
        assert r.json()["status"] == "unavailable" and int(r.headers["retry-after"]) > 0
        assert "node2" in r.json()["down"]["write quorum"]
        lines = log_lines_after(survivor, mark)
        assert not any("Traceback" in line for line in lines), "\n".join(lines)
        quorum_lines = [line for line in lines if "write quorum lost" in line]
        assert 1 <= len(quorum_lines) <= 3, "\n".join(lines)
        # The dead peers are named as unreachable, not as a broken pipe.
        assert any("unreachable: connection refused" in line for line in lines), lines
        assert not any("Broken pipe" in line for line in lines), lines
    finally:
        stop_nodes(nodes)


@pytest.mark.slow
@pytest.mark.postgres
def test_unreachable_database_is_503_with_few_log_lines(tmp_path: Path, pg_url: str) -> None:
    server = urlsplit(PG_BASE)
    proxy = TcpProxy((server.hostname or "127.0.0.1", server.port or 5432))
    via_proxy = urlsplit(pg_url)._replace(
        netloc=f"{server.username or 'postgres'}@127.0.0.1:{proxy.port}").geturl()
    nodes = start_nodes(tmp_path, via_proxy, [("node1", "dc1")], node_extra(1))
    node = nodes[0]
    s3 = s3_client(node)
    rest_auth = {"X-API-Key": f"{node.access_key}:{node.secret_key}"}
    try:
        s3.put_object(Bucket="default", Key="before", Body=b"x" * 100)
        mark = len(node.read_log())
        proxy.cut()  # the database server is gone: connections reset, then refused
        for i in range(30):
            err = s3_error(lambda i=i: s3.put_object(Bucket="default", Key=f"k{i}",
                                                     Body=b"y" * 100))
            assert_s3_unavailable(err)
            assert_s3_unavailable(s3_error(lambda: s3.list_objects_v2(Bucket="default")))
            r = httpx.get(f"{node.web_url}/api/v1/files", headers=rest_auth, timeout=30)
            assert_json_unavailable(r)
        for i in range(5):
            # SFTP logins cannot be checked either: refused, and logged as little.
            transport = paramiko.Transport(("127.0.0.1", node.ports["sftp"]))
            try:
                with pytest.raises(paramiko.AuthenticationException):
                    transport.connect(username=f"user{i}", password="secret")
            finally:
                transport.close()
        r = health(node)
        assert r.status_code == 503 and "database" in r.json()["down"], r.text
        assert int(r.headers["retry-after"]) > 0
        lines = log_lines_after(node, mark)
        # ~95 failed requests, heartbeats and worker passes: a handful of lines.
        assert len(lines) <= 10, "\n".join(lines)
        assert not any("Traceback" in line for line in lines), "\n".join(lines)
        assert any("metadata database" in line and "unreachable" in line for line in lines)
    finally:
        stop_nodes(nodes)
