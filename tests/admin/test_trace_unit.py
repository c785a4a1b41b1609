"""The trace bus (bounded, dropping per-subscriber buffers) and the S3
operation / access-key derivation of the trace middleware."""

from __future__ import annotations

import pytest
import trio

from protocols.admin.trace import s3_access_key, s3_operation
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


@pytest.mark.parametrize(("method", "path", "query", "headers", "op"), [
    ("GET", "/", {}, {}, "ListBuckets"),
    ("PUT", "/b", {}, {}, "CreateBucket"),
    ("GET", "/b", {"list-type": ["2"]}, {}, "ListObjectsV2"),
    ("GET", "/b", {"versions": [""]}, {}, "ListObjectVersions"),
    ("PUT", "/b", {"versioning": [""]}, {}, "PutBucketVersioning"),
    ("POST", "/b", {"delete": [""]}, {}, "DeleteObjects"),
    ("PUT", "/b/k", {}, {}, "PutObject"),
    ("PUT", "/b/k", {}, {"x-amz-copy-source": "/a/b"}, "CopyObject"),
    ("PUT", "/b/k", {"partNumber": ["1"], "uploadId": ["u"]}, {}, "UploadPart"),
    ("POST", "/b/k", {"uploads": [""]}, {}, "CreateMultipartUpload"),
    ("POST", "/b/k", {"uploadId": ["u"]}, {}, "CompleteMultipartUpload"),
    ("DELETE", "/b/k", {"uploadId": ["u"]}, {}, "AbortMultipartUpload"),
    ("GET", "/b/k", {"uploadId": ["u"]}, {}, "ListParts"),
    ("HEAD", "/b/k", {}, {}, "HeadObject"),
    ("GET", "/b/dir/k", {}, {}, "GetObject"),
])
def test_s3_operation_names(method, path, query, headers, op):
    bucket, _, key = path.lstrip("/").partition("/")
    assert s3_operation(method, bucket, key, query, headers) == op


def test_s3_access_key_from_header_or_presigned_url():
    auth = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-central-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=abc")
    assert s3_access_key({"authorization": auth}, {}) == "AKIDEXAMPLE"
    cred = {"X-Amz-Credential": ["AKID2/20260101/eu-central-1/s3/aws4_request"]}
    assert s3_access_key({}, cred) == "AKID2"
    assert s3_access_key({}, {}) == ""


@pytest.mark.trio
async def test_middleware_counts_unwatched_requests_and_traces_watched_ones():
    from protocols.admin.trace import TraceMiddleware

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
