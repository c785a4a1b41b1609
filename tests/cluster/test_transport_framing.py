"""The transport's HTTP/1.1 framing against live sockets: malformed or split
requests to a real transport server get a 4xx and a closed connection (never
a crash), and a malformed answer to the client is a TransportError."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import trio

from cluster.transport import (
    TransportClient,
    TransportError,
    body_tag,
    sign,
    transport_key,
)
from tests.cluster.transport_support import SECRET, serve_transport


def _signed_put(addr: str, data: bytes, *, chunked: bool = False,
                extra: str = "") -> tuple[str, bytes]:
    """A correctly signed chunk PUT, as raw bytes (head and body)."""
    cid = hashlib.sha256(data).hexdigest()
    key, target = transport_key(SECRET), f"/v1/chunks/{cid}"
    date, nonce = str(int(time.time())), os.urandom(12).hex()
    tag = body_tag(key, data)
    auth = sign(key, "PUT", target, date, "n2", cid, nonce, tag.nonce, tag.mac)
    framing = ("transfer-encoding: chunked" if chunked else f"content-length: {len(data)}")
    head = (f"PUT {target} HTTP/1.1\r\nhost: {addr}\r\n{framing}\r\nx-cs-node: n2\r\n"
            f"x-cs-date: {date}\r\nx-cs-sha256: {cid}\r\nx-cs-nonce: {nonce}\r\n"
            f"x-cs-body-nonce: {tag.nonce}\r\nx-cs-body-mac: {tag.mac}\r\n"
            f"{extra}authorization: CS-HMAC {auth}\r\n\r\n").encode()
    if chunked:
        half = len(data) // 2
        body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, data[:half], len(data) - half,
                                                      data[half:])
        return cid, head + body
    return cid, head + data


async def _send_and_read_all(addr: str, pieces: list[bytes], *,
                             stop_on_answer: bool = True, eof: bool = False) -> bytes:
    """Send ``pieces`` one by one (a short pause between them, so the server
    sees separate reads; no more once it answered, if ``stop_on_answer``),
    then (after ending the sending side, if ``eof``) read until the server
    closes."""
    host, _, port = addr.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    got = b""
    async with stream:
        for piece in pieces:
            await stream.send_all(piece)
            with trio.move_on_after(0.02):
                got += await stream.receive_some(65536)
            if got and stop_on_answer:
                break
        if eof:
            await stream.send_eof()
        with trio.fail_after(5):  # the server must close, not wait for more
            while data := await stream.receive_some(65536):
                got += data
        return got


MALFORMED = [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /v1/chunks HTTP/1.1\nhost: x\n\n", b"400"),  # bare LF line ends
    (b"GET /v1/chunks HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", b"400"),
    (b"GET /v1/chunks HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n", b"400"),
    (b"PUT /v1/chunks/x HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
     b"transfer-encoding: chunked\r\n\r\n", b"400"),
    (b"PUT /v1/chunks/x HTTP/1.1\r\nhost: x\r\ncontent-length: 5, 6\r\n\r\n", b"400"),
    (b"GET /v1/chunks HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000, b"431"),
    (b"GET /v1/chunks HTTP/2.0\r\nhost: x\r\n\r\n", b"400"),
]


@pytest.mark.trio
async def test_malformed_requests_get_a_4xx_and_a_closed_connection(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, _ = await serve_transport(nursery, tmp_path)
        for raw, status in MALFORMED:
            # Whole, and split into small pieces (a head across many reads).
            step = max(7, len(raw) // 8)
            for pieces in ([raw], [raw[i:i + step] for i in range(0, len(raw), step)]):
                answer = await _send_and_read_all(addr, pieces)
                assert answer.startswith(b"HTTP/1.1 " + status + b" "), (raw[:60], answer)
                assert b"connection: close" in answer.lower()
        # The node is still serving.
        client = TransportClient("n2", SECRET)
        assert await client.list_chunks(addr) == []
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_split_and_chunked_requests_are_served(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        data = os.urandom(300_000)
        cid, raw = _signed_put(addr, data)
        # Split inside the head, between head and body, and inside the body;
        # then the client closes: the server answers and closes too.
        cut = raw.index(b"\r\n\r\n")
        pieces = [raw[:40], raw[40:cut + 2], raw[cut + 2:cut + 100], raw[cut + 100:]]
        answer = await _send_and_read_all(addr, [*pieces, b"GARBAGE\r\n\r\n"],
                                          stop_on_answer=False)
        assert answer.startswith(b"HTTP/1.1 204 ")
        assert b"HTTP/1.1 400 " in answer  # the garbage after it on the same connection
        assert await local.get_chunk(cid) == data
        # A chunked body (the transport client never sends one) is accepted too.
        data2 = os.urandom(100_000)
        cid2, raw2 = _signed_put(addr, data2, chunked=True)
        answer = await _send_and_read_all(addr, [raw2[:1000], raw2[1000:], b"GARBAGE\r\n\r\n"],
                                          stop_on_answer=False)
        assert answer.startswith(b"HTTP/1.1 204 ")
        assert await local.get_chunk(cid2) == data2
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_body_cut_short_does_not_store_anything(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        data = os.urandom(200_000)
        cid, raw = _signed_put(addr, data)
        assert await _send_and_read_all(addr, [raw[:-1000]], eof=True) == b""
        assert not await local.has_chunk(cid)
        client = TransportClient("n2", SECRET)
        await client.put_chunk(addr, cid, data)
        assert await local.get_chunk(cid) == data
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_100_continue_only_after_authentication(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        host, _, port = addr.rpartition(":")
        data = os.urandom(50_000)
        cid, raw = _signed_put(addr, data, extra="expect: 100-continue\r\n")
        head, body = raw[:len(raw) - len(data)], raw[len(raw) - len(data):]
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(head)
            with trio.fail_after(5):
                assert await stream.receive_some(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
                await stream.send_all(body)
                assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 204 ")
        assert await local.get_chunk(cid) == data
        # Unsigned: a 401 and a close, never a 100 that would invite the body.
        answer = await _send_and_read_all(addr, [
            b"PUT /v1/chunks/" + cid.encode() + b" HTTP/1.1\r\nhost: x\r\n"
            b"content-length: 10\r\nexpect: 100-continue\r\n\r\n"])
        assert answer.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in answer
        nursery.cancel_scope.cancel()


BAD_ANSWERS = [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nno length",
    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 20_000,
    b"",
]


@pytest.mark.trio
async def test_a_malformed_answer_is_a_transport_error() -> None:
    answers = iter(BAD_ANSWERS)

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(next(answers))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, answer, 0)
        addr = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        client = TransportClient("n2", SECRET)
        for raw in BAD_ANSWERS:
            with pytest.raises(TransportError):
                await client.list_chunks(addr)
            assert not client._idle.get(addr), raw  # a broken connection is never pooled
        nursery.cancel_scope.cancel()
