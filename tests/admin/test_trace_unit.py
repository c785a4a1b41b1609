"""The trace bus (bounded, dropping per-subscriber buffers), the access-key
derivation of the trace middleware and the S3 operation names it reports."""

from __future__ import annotations

import pytest
import trio

from protocols.admin.trace import TraceMiddleware, s3_access_key
from storage.trace import TraceBus, TraceEvent


def _event(status: int = 200, protocol: str = "s3") -> TraceEvent:
    return TraceEvent(time=0.0, node="n1", protocol=protocol, operation="PutObject",
                      status=status, duration_ms=1.0)


@pytest.mark.trio
async def test_slow_subscriber_drops_and_does_not_block_others():
    bus = TraceBus("n1")
    slow, fast = bus.subscribe(buffer=2), bus.subscribe(buffer=100)
    for _ in range(10):
        bus.publish(_event())  # never blocks, whatever the subscribers do
    assert slow.take_dropped() == 8 and slow.take_dropped() == 0
    assert fast.dropped == 0
    received = [slow.receive.receive_nowait() for _ in range(2)]
    assert len(received) == 2
    with pytest.raises(trio.WouldBlock):
        slow.receive.receive_nowait()
    slow.close()
    assert bus.subscriber_count == 1
    bus.close()
    for _ in range(10):
        fast.receive.receive_nowait()
    with pytest.raises(trio.EndOfChannel):
        await fast.receive.receive()


def test_totals_count_errors():
    bus = TraceBus("n1")
    for status in (200, 404, 500, 503):
        bus.publish(_event(status))
    stats = bus.stats()
    assert stats["requests_total"] == 4 and stats["errors_total"] == 2


# (method, Host, path, query, headers) -> the operation the trace must name.
S3_CASES = [
    # A browser form upload, not a bucket operation.
    (("POST", "127.0.0.1", "/b", b"", [(b"content-type", b"multipart/form-data; boundary=x")]),
     ("PostObject", "b", "")),
    # Not a plain PutObject.
    (("PUT", "127.0.0.1", "/b/k", b"partNumber=1&uploadId=u", []), ("UploadPart", "b", "k")),
    # Virtual-host style: the bucket is in the Host header.
    (("GET", "b.localhost:9000", "/", b"", []), ("ListObjects", "b", "")),
    (("GET", "b.localhost:9000", "/dir/k", b"", []), ("GetObject", "b", "dir/k")),
    (("GET", "127.0.0.1", "/", b"", []), ("ListBuckets", "", "")),
    (("PUT", "127.0.0.1", "/b/k", b"partNumber=1&uploadId=u",
      [(b"x-amz-copy-source", b"/a/k")]), ("UploadPartCopy", "b", "k")),
    (("POST", "127.0.0.1", "/b", b"delete", []), ("DeleteObjects", "b", "")),
    (("GET", "127.0.0.1", "/b", b"list-type=2", []), ("ListObjectsV2", "b", "")),
    (("GET", "127.0.0.1", "/b", b"lifecycle", []), ("GetBucketLifecycleConfiguration", "b", "")),
    (("OPTIONS", "127.0.0.1", "/b/k", b"", []), ("PreflightRequest", "b", "k")),
]


@pytest.mark.trio
async def test_s3_trace_names_the_operation_the_s3_router_resolved(tmp_path):
    """The trace reports the S3 app's own operation (one classifier), including
    the cases a path-only guess got wrong: a POST Object upload, an UploadPart
    and a virtual-host ``GET /``."""
    from cluster.services import build_services
    from config.settings import Settings, replace
    from protocols.s3.app import create_s3_app
    from storage.bridge import AsyncioBridge
    from storage.db import Database

    settings = replace(
        Settings(), node={"data_dir": tmp_path / "node"},
        metadata={"url": f"sqlite://{tmp_path / 'meta.sqlite3'}"},
        cluster={"secret": "trace-test-cluster-secret-0123456789"},
    )
    bridge = AsyncioBridge()
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    try:
        await db.open()
        bus = TraceBus("n1")
        traced = TraceMiddleware(create_s3_app(build_services(settings, bridge, db)),
                                 protocol="s3", bus=bus, node_id="n1")
        watcher = bus.subscribe()
        for (method, host, path, query, headers), expected in S3_CASES:
            sent: list[dict] = []

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message, sent=sent):
                sent.append(message)

            scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                     "query_string": query, "headers": [(b"host", host.encode()), *headers]}
            await traced(scope, receive, send)
            event = watcher.receive.receive_nowait()
            assert (event.operation, event.bucket, event.key) == expected, (method, host, path)
            assert event.status == sent[0]["status"] >= 400  # unsigned: refused, still named
    finally:
        await db.close()
        bridge.stop()


def test_s3_access_key_from_header_or_presigned_url():
    auth = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-central-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=abc")
    assert s3_access_key({"authorization": auth}, {}) == "AKIDEXAMPLE"
    cred = {"X-Amz-Credential": ["AKID2/20260101/eu-central-1/s3/aws4_request"]}
    assert s3_access_key({}, cred) == "AKID2"
    assert s3_access_key({}, {}) == ""


@pytest.mark.trio
async def test_middleware_counts_unwatched_requests_and_traces_watched_ones():
    async def app(scope, receive, send):
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        status = 404 if scope["path"] == "/missing" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"abc"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    bus = TraceBus("n1")
    traced = TraceMiddleware(app, protocol="s3", bus=bus, node_id="n1")

    def scope(path):
        return {"type": "http", "method": "GET", "path": path, "query_string": b"",
                "headers": []}

    # Nobody watches: no event is built, but the rates still count every request.
    await traced(scope("/b/k"), receive, send)
    await traced(scope("/missing"), receive, send)
    with pytest.raises(RuntimeError):
        await traced(scope("/boom"), receive, send)
    stats = bus.stats()
    assert stats["requests_total"] == 3 and stats["errors_total"] == 1

    watcher = bus.subscribe()
    await traced(scope("/b/k"), receive, send)
    event = watcher.receive.receive_nowait()
    assert (event.status, event.bytes_out, event.protocol) == (200, 3, "s3")
    assert bus.stats()["requests_total"] == 4
