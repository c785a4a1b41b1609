"""The web port's edges against real nodes: NUL in client text, stalled bodies,
request smuggling, lost chunks."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.replication_support import chunk_path
from tests.harness import NodeProcess, prepare_node, started_node
from tests.rest.conftest import User, signup

STALL_SECONDS = 1.0


@pytest.fixture(scope="module")
def edge_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node (SQLite) whose request bodies may stall for only a second."""
    with pytest.MonkeyPatch.context() as mp:
        # [listen] is written by the harness; the environment overrides it.
        mp.setenv("CLOUDSTORAGE_LISTEN_BODY_TIMEOUT_SECONDS", str(STALL_SECONDS))
        with started_node(tmp_path_factory.mktemp("edgenode")) as node:
            yield node


@pytest.fixture
def edge_user(edge_node: NodeProcess) -> Iterator[User]:
    """A fresh account on :func:`edge_node`."""
    u = signup(edge_node)
    yield u
    u.client.close()


def _complete(answer: bytes) -> bool:
    """Whether ``answer`` holds one whole response framed by Content-Length."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if sep and line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _exchange(node: NodeProcess, raw: bytes, *, deadline: float = 15.0,
              one_response: bool = False) -> tuple[bytes, bool]:
    """Write ``raw`` to the web port; everything the server sends until it
    closes (or, with ``one_response``, has sent a whole response; or
    ``deadline``), and whether it closed."""
    with socket.create_connection(("127.0.0.1", node.ports["web"]), timeout=deadline) as s:
        s.sendall(raw)
        got = b""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            s.settimeout(max(end - time.monotonic(), 0.01))
            try:
                piece = s.recv(65536)
            except TimeoutError:
                return got, False
            if not piece:
                return got, True
            got += piece
            if one_response and _complete(got):
                return got, False
        return got, False


def _status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def _fid(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _assert_refused(r: httpx.Response, name: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == "InvalidArgument" and body["status"] == 400, body
    assert f"'{name}'" in body["message"], body


@pytest.mark.postgres
def test_nul_in_client_text_is_a_400_naming_the_parameter(pg_url: str, tmp_path: Path) -> None:
    # PostgreSQL refuses NUL in text columns, failing the statement: each of
    # these reached it and answered 500 before.
    node = prepare_node(tmp_path / "node1", pg_url)
    node.start()
    try:
        user = signup(node)
        api, c = user.api_headers, user.client
        with httpx.Client(base_url=node.web_url, timeout=30) as anon:
            _assert_refused(anon.post("/api/auth/signup",
                                      json={"email": "a\x00@example.com",
                                            "password": "correct horse"}), "email")
            _assert_refused(anon.post("/api/auth/login",
                                      json={"email": "a\x00@example.com",
                                            "password": "correct horse"}), "email")
        files = "/api/v1/files"
        _assert_refused(c.get(f"{files}/{_fid(user.bucket + '/a' + chr(0))}", headers=api), "id")
        _assert_refused(c.get(f"{files}/{_fid('b' + chr(0) + '/key')}", headers=api), "id")
        _assert_refused(c.delete(f"{files}/{_fid('b' + chr(0) + '/key')}", headers=api), "id")
        _assert_refused(c.get(f"{files}?prefix=a%00", headers=api), "prefix")
        _assert_refused(c.get(f"{files}?bucket=b%00", headers=api), "bucket")
        _assert_refused(c.get(f"{files}?cursor={_fid('a' + chr(0))}", headers=api), "cursor")
        _assert_refused(c.post(f"{files}?key=k&bucket=b%00", headers=api, content=b"x"),
                        "bucket")
        _assert_refused(c.post(files, headers=api, data={"bucket": "b\x00"},
                               files={"file": ("a.txt", b"x")}), "bucket")
        _assert_refused(c.get("/api/explorer?bucket=b%00"), "bucket")
        _assert_refused(c.get("/api/explorer?prefix=p%00"), "prefix")
        _assert_refused(c.get(f"/api/explorer?cursor={_fid('a' + chr(0))}"), "cursor")
        _assert_refused(c.delete("/api/keys?id=AK%00"), "id")
        _assert_refused(c.delete("/api/sftp/keys?id=k%00"), "id")
        _assert_refused(c.post("/api/keys", json={"name": "n\x00"}), "name")
        # The node is still fine, and nothing was stored.
        listed = c.get(files, headers=api)
        assert listed.status_code == 200 and listed.json()["files"] == []
        # Failed logins are counted in the database (PostgreSQL here).
        wrong = c.post("/api/auth/login", json={"email": user.email, "password": "nope nope"})
        assert wrong.status_code == 401
        right = c.post("/api/auth/login", json={"email": user.email,
                                                "password": "correct horse"})
        assert right.status_code == 200, right.text
        user.client.close()
    finally:
        node.stop()


def test_a_stalled_upload_body_gets_408_and_stores_nothing(
    edge_node: NodeProcess, edge_user: User
) -> None:
    # Content-Length promises 1,000,000 bytes; only 1,000 come.  The web port
    # used to wait forever; now it answers once the body stalls.
    head = (f"POST /api/v1/files?key=stalled.bin HTTP/1.1\r\nHost: x\r\n"
            f"X-API-Key: {edge_user.access_key}:{edge_user.secret_key}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")
    started = time.monotonic()
    answer, closed = _exchange(edge_node, head.encode() + b"x" * 1000)
    elapsed = time.monotonic() - started
    status, body = _status_and_json(answer)
    assert status == 408 and body["error"] == "RequestTimeout" and body["status"] == 408, answer
    assert closed, "the connection must be closed: its framing is lost"
    assert STALL_SECONDS <= elapsed < STALL_SECONDS + 10
    # A chunked body that stalls must not be taken for a complete one either.
    chunked = head.replace("Content-Length: 1000000", "Transfer-Encoding: chunked").replace(
        "stalled.bin", "stalled-chunked.bin")
    answer, closed = _exchange(edge_node, chunked.encode() + b"3e8\r\n" + b"x" * 1000 + b"\r\n")
    status, body = _status_and_json(answer)
    assert status == 408 and body["error"] == "RequestTimeout" and closed, answer
    listed = httpx.get(f"{edge_node.web_url}/api/v1/files", headers=edge_user.api_headers)
    assert listed.json()["files"] == []


def test_a_stalled_json_body_gets_408(edge_node: NodeProcess) -> None:
    raw = (b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 100\r\n\r\n{\"email\":")
    answer, closed = _exchange(edge_node, raw)
    status, body = _status_and_json(answer)
    assert status == 408 and body["error"] == "RequestTimeout", answer
    assert closed


def test_a_slow_but_steady_upload_is_not_cut(edge_node: NodeProcess, edge_user: User) -> None:
    # The deadline is per stall, not per body: pieces spaced under it pass.
    def body() -> Iterator[bytes]:
        for _ in range(3):
            yield b"y" * 1000
            time.sleep(STALL_SECONDS / 3)

    r = httpx.post(f"{edge_node.web_url}/api/v1/files?key=slow.bin",
                   headers=edge_user.api_headers, content=body(), timeout=30)
    assert r.status_code == 201 and r.json()["size"] == 3000, r.text


# What h11 0.16 (hypercorn's parser) accepted before; the S3 port refuses each.
_SMUGGLING = {
    "content-length with transfer-encoding": (
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "obs-fold": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "bare LF": b"GET /health HTTP/1.1\nHost: x\n\n",
    "bare LF on one line": b"GET /health HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "transfer-encoding in HTTP/1.0": (
        b"POST /api/auth/login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("raw", list(_SMUGGLING.values()), ids=list(_SMUGGLING))
def test_heads_that_enable_smuggling_are_refused(edge_node: NodeProcess, raw: bytes) -> None:
    answer, closed = _exchange(edge_node, raw)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert closed


def test_a_second_request_on_the_connection_is_vetted_too(edge_node: NodeProcess) -> None:
    good = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    answer, closed = _exchange(edge_node, good + _SMUGGLING["obs-fold"])
    first, _, rest = answer.partition(b"HTTP/1.1 400")
    assert first.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in first, answer
    assert rest is not None and answer.count(b"HTTP/1.1 ") == 2 and closed, answer


def test_an_answer_before_the_body_closes_the_connection(edge_node: NodeProcess) -> None:
    # Refused by a before_request hook (billing is not configured) as soon as
    # the head arrived: the body, sent later, must not leave the connection
    # open and deaf.  hypercorn kept it open, and the client's next request
    # on it waited forever (the suite's 60-second web timeouts).
    body = b'{"planName": "1tb"}'
    head = (b"POST /api/billing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", edge_node.ports["web"]), timeout=10) as s:
        s.sendall(head)
        answer = b""
        while not _complete(answer):
            piece = s.recv(65536)
            assert piece, answer
            answer += piece
        status, error = _status_and_json(answer)
        assert status == 503 and error["error"] == "BillingNotConfigured"
        assert b"\r\nconnection: close\r\n" in answer.partition(b"\r\n\r\n")[0].lower() + b"\r\n"
        s.sendall(body + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = b""
        while piece := s.recv(65536):  # closed by the server, not left hanging
            rest += piece
        assert b"HTTP/1.1" not in rest  # the request after it was not taken


def test_plain_requests_still_pass(edge_node: NodeProcess) -> None:
    # Repeated equal Content-Length fields and a chunked body remain fine.
    body = b'{"email":"nobody@example.com","password":"x"}'
    dup = (b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (len(body), len(body), body))
    answer, _ = _exchange(edge_node, dup, one_response=True)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    chunked = (b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    answer, _ = _exchange(edge_node, chunked, one_response=True)
    assert answer.startswith(b"HTTP/1.1 401"), answer


def _upload(node: NodeProcess, user: User, key: str, data: bytes) -> str:
    r = httpx.post(f"{node.web_url}/api/v1/files?key={key}", headers=user.api_headers,
                   content=data, timeout=60)
    assert r.status_code == 201, r.text
    return f"{node.web_url}/api/v1/files/{r.json()['id']}"


def test_a_file_whose_chunks_are_lost_is_an_error_not_an_empty_200(
    edge_node: NodeProcess, edge_user: User
) -> None:
    data = os.urandom(64 * 1024)  # one chunk, not inline
    url = _upload(edge_node, edge_user, "lost.bin", data)
    chunk_path(edge_node, hashlib.sha256(data).hexdigest()).unlink()
    r = httpx.get(url, headers=edge_user.api_headers)
    assert r.status_code == 500, (r.status_code, r.content[:200])
    assert r.json()["error"] == "InternalError" and r.json()["status"] == 500
    ranged = httpx.get(url, headers={**edge_user.api_headers, "Range": "bytes=10-20"})
    assert ranged.status_code == 500 and ranged.json()["error"] == "InternalError"
    # The metadata is still there to see.
    meta = httpx.get(f"{url}?meta=true", headers=edge_user.api_headers)
    assert meta.status_code == 200 and meta.json()["size"] == len(data)


def test_a_later_lost_chunk_cuts_the_download_short(
    edge_node: NodeProcess, edge_user: User
) -> None:
    chunk = edge_node.settings.storage.chunk_size
    data = os.urandom(chunk + 1024)  # two chunks; the second goes missing
    url = _upload(edge_node, edge_user, "half-lost.bin", data)
    chunk_path(edge_node, hashlib.sha256(data[chunk:]).hexdigest()).unlink()
    # The head is sent with the first chunk; the missing second one can only
    # cut the connection, which the client sees as an incomplete body.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url, headers=edge_user.api_headers, timeout=30)
    # Alone, the first chunk still reads fine.
    head = httpx.get(url, headers={**edge_user.api_headers, "Range": "bytes=0-99"})
    assert head.status_code == 206 and head.content == data[:100]
