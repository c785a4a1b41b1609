"""The node-to-node transport over real loopback sockets: round trips,
authentication, validation."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from pathlib import Path

import httpx
import pytest
import trio

from cluster.transport import TransportClient, TransportError
from storage.blobs import ChunkNotFound
from tests.cluster.transport_support import SECRET, serve_transport


@pytest.mark.trio
async def test_put_get_has_delete_list_round_trip(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        client = TransportClient("n2", SECRET)
        blobs = [os.urandom(n) for n in (1, 70_000, 5 * 1024 * 1024 + 3)]
        ids = [hashlib.sha256(b).hexdigest() for b in blobs]
        for cid, data in zip(ids, blobs, strict=True):
            await client.put_chunk(addr, cid, data)
            assert await local.get_chunk(cid) == data
        # Keep-alive reuse across big and small bodies in both directions.
        for _ in range(2):
            for cid, data in zip(ids, blobs, strict=True):
                assert await client.get_chunk(addr, cid) == data
                assert await client.has_chunk(addr, cid)
        assert sorted(await client.list_chunks(addr)) == sorted(ids)
        await client.delete_chunk(addr, ids[0])
        assert not await client.has_chunk(addr, ids[0])
        with pytest.raises(ChunkNotFound):
            await client.get_chunk(addr, ids[0])
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_unauthenticated_and_invalid_requests_are_refused(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        data = b"payload"
        cid = hashlib.sha256(data).hexdigest()

        def plain(method: str, path: str, **kw) -> httpx.Response:
            return httpx.request(method, f"http://{addr}{path}", timeout=5, **kw)

        # No signature, or one made with another secret: 401 and nothing stored.
        r = await trio.to_thread.run_sync(lambda: plain("PUT", f"/v1/chunks/{cid}",
                                                        content=data))
        assert r.status_code == 401 and r.content == b"unauthorized\n"
        intruder = TransportClient("evil", b"another-secret-0123456789abcdef")
        with pytest.raises(TransportError, match="401"):
            await intruder.put_chunk(addr, cid, data)
        assert not await local.has_chunk(cid)
        r = await trio.to_thread.run_sync(lambda: plain("GET", "/v1/workers"))
        assert r.status_code == 401
        client = TransportClient("n2", SECRET)
        # Bytes that do not hash to the id are refused.
        wrong = hashlib.sha256(b"other").hexdigest()
        status, _ = await client.request(addr, "PUT", f"/v1/chunks/{wrong}", data)
        assert status == 400 and not await local.has_chunk(wrong)
        # Malformed ids never reach the file system.
        status, body = await client.request(addr, "GET", "/v1/chunks/..%2F..%2Fetc")
        assert status == 400 and b"malformed" in body
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_captured_delete_cannot_be_replayed(tmp_path: Path) -> None:
    import time

    from cluster.transport import sign, transport_key

    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        data = b"keep me"
        cid = hashlib.sha256(data).hexdigest()
        empty = hashlib.sha256(b"").hexdigest()
        date = str(int(time.time()))
        target = f"/v1/chunks/{cid}"
        # What an eavesdropper on the node network would have captured.
        captured = {
            "x-cs-node": "n2", "x-cs-date": date, "x-cs-sha256": empty,
            "x-cs-nonce": "0f" * 12,
            "authorization": "CS-HMAC " + sign(transport_key(SECRET), "DELETE", target, date,
                                               "n2", empty, "0f" * 12),
        }

        def delete() -> int:
            return httpx.delete(f"http://{addr}{target}", headers=captured, timeout=5).status_code

        await local.put_chunk(cid, data)
        assert await trio.to_thread.run_sync(delete) == 204  # the original request
        await local.put_chunk(cid, data)  # written again later
        assert await trio.to_thread.run_sync(delete) == 401  # the replay
        assert await local.has_chunk(cid)
        nursery.cancel_scope.cancel()


async def _flipping_proxy(
    nursery: trio.Nursery, upstream: str, offset: int
) -> str:
    """A forwarder to ``upstream`` that flips one bit of the byte at
    ``offset`` of what the client sends: a transfer corrupted in transit."""
    host, _, port = upstream.rpartition(":")

    async def pump(src: trio.SocketStream, dst: trio.SocketStream, flip_at: int) -> None:
        seen = 0
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await src.receive_some(65536):
                if seen <= flip_at < seen + len(data):
                    data = bytearray(data)
                    data[flip_at - seen] ^= 0x01
                seen += len(data)
                await dst.send_all(data)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await dst.aclose()

    async def handle(client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream(host, int(port))
        async with trio.open_nursery() as inner:
            inner.start_soon(pump, client, server, offset)
            inner.start_soon(pump, server, client, -1)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@pytest.mark.trio
async def test_a_chunk_corrupted_in_transit_is_refused(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        data = os.urandom(1024 * 1024)
        cid = hashlib.sha256(data).hexdigest()
        # Well past the request head: a bit of the body's middle flips.
        proxy = await _flipping_proxy(nursery, addr, 600_000)
        client = TransportClient("n2", SECRET)
        with pytest.raises(TransportError, match="400"):
            await client.put_chunk(proxy, cid, data)
        assert not await local.has_chunk(cid)
        await client.put_chunk(addr, cid, data)  # the same request, intact
        assert await local.get_chunk(cid) == data
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_the_body_mac_is_checked_and_signed(tmp_path: Path) -> None:
    import time

    from cluster.transport import body_tag, sign, transport_key

    async with trio.open_nursery() as nursery:
        addr, local = await serve_transport(nursery, tmp_path)
        data = os.urandom(200_000)
        cid = hashlib.sha256(data).hexdigest()
        key = transport_key(SECRET)
        target = f"/v1/chunks/{cid}"

        def put(mac_of: bytes, *, tamper: str = "") -> int:
            date, nonce = str(int(time.time())), os.urandom(12).hex()
            tag = body_tag(key, mac_of)
            headers = {
                "x-cs-node": "n2", "x-cs-date": date, "x-cs-sha256": cid, "x-cs-nonce": nonce,
                "x-cs-body-nonce": tag.nonce, "x-cs-body-mac": tag.mac,
                "authorization": "CS-HMAC " + sign(key, "PUT", target, date, "n2", cid,
                                                   nonce, tag.nonce, tag.mac),
            }
            if tamper == "mac":  # an on-path rewrite of the tag after signing
                headers["x-cs-body-mac"] = body_tag(key, data[::-1]).mac
            elif tamper == "nonce":  # or of the nonce that picks its key
                headers["x-cs-body-nonce"] = os.urandom(12).hex()
            return httpx.put(f"http://{addr}{target}", content=data, headers=headers,
                             timeout=5).status_code

        # Signed, with the right SHA-256 but a tag of other bytes: refused.
        assert await trio.to_thread.run_sync(put, data[:-1] + b"\0") == 400
        # A tag or tag nonce changed after signing: the signature no longer holds.
        for what in ("mac", "nonce"):
            assert await trio.to_thread.run_sync(functools.partial(put, data, tamper=what)) == 401
        assert not await local.has_chunk(cid)
        assert await trio.to_thread.run_sync(put, data) == 204
        assert await local.get_chunk(cid) == data
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_one_body_tag_serves_every_replica_of_that_body_only(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        addrs, stores = [], []
        for name in ("a", "b"):
            addr, local = await serve_transport(nursery, tmp_path / name)
            addrs.append(addr)
            stores.append(local)
        client = TransportClient("n2", SECRET)
        data = os.urandom(300_000)
        cid = hashlib.sha256(data).hexdigest()
        tag = client.body_tag(data)
        for addr in addrs:
            await client.put_chunk(addr, cid, data, tag)
        for local in stores:
            assert await local.get_chunk(cid) == data
        # A tag is never sent with bytes other than those it was made for.
        other = os.urandom(1000)
        with pytest.raises(ValueError, match="another body"):
            await client.put_chunk(addrs[0], hashlib.sha256(other).hexdigest(), other, tag)
        await client.aclose()
        nursery.cancel_scope.cancel()
