"""S3 behaviour independent conformance runs compared with AWS: bucket
re-creation in us-east-1, ListBuckets paging, standard headers kept verbatim,
uploads whose length is unknown."""

from __future__ import annotations

import base64
import secrets
import socket
import zlib
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from protocols.s3.chunked import encode_chunked
from protocols.s3.sigv4 import STREAMING_UNSIGNED_PAYLOAD_TRAILER
from tests.s3.conftest import S3Node, Server
from tests.s3.support import code_of, status_of
from tests.s3.test_s3_errors import Raw, assert_absent, parse_error


@pytest.fixture
def raw(node: S3Node) -> Raw:
    return Raw(node)


@pytest.fixture(scope="module")
def us_east_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A node of a cluster whose region is us-east-1 (N. Virginia)."""
    server = Server(tmp_path_factory.mktemp("s3useast"), region="us-east-1")
    server.start()
    yield server
    server.stop()


def test_recreating_an_owned_bucket_is_409_outside_us_east_1(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert (status_of(exc), code_of(exc)) == (409, "BucketAlreadyOwnedByYou")


def test_recreating_an_owned_bucket_in_us_east_1_is_200(us_east_server):
    node = S3Node(us_east_server, *us_east_server.new_credentials(), region="us-east-1")
    s3 = node.client()
    name = f"legacy-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="kept", Body=b"x")
    again = s3.create_bucket(Bucket=name)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert again["Location"] == f"/{name}"
    # Nothing was reset, and someone else's bucket is still someone else's.
    assert s3.get_object(Bucket=name, Key="kept")["Body"].read() == b"x"
    other = node.client(*node.create_account(f"other-{secrets.token_hex(3)}@example.com"))
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket=name)
    assert (status_of(exc), code_of(exc)) == (409, "BucketAlreadyExists")


def test_list_buckets_pages_with_max_buckets_and_prefix(node, raw):
    s3 = node.client()
    tag = secrets.token_hex(3)
    names = sorted([f"a-{tag}-{i}" for i in range(5)] + [f"z-{tag}"])
    for name in names:
        s3.create_bucket(Bucket=name)
    seen, token, pages = [], None, 0
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_buckets(MaxBuckets=2, Prefix=f"a-{tag}", **extra)
        assert page["Prefix"] == f"a-{tag}"
        assert len(page["Buckets"]) <= 2
        seen += [b["Name"] for b in page["Buckets"]]
        pages += 1
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == names[:5] and pages == 3
    everything = s3.list_buckets()
    assert [b["Name"] for b in everything["Buckets"]] == names
    assert "ContinuationToken" not in everything
    assert s3.list_buckets(BucketRegion="us-west-2")["Buckets"] == []
    assert len(s3.list_buckets(BucketRegion=node.region)["Buckets"]) == 6
    for query, name in (("max-buckets=0", "max-buckets"), ("max-buckets=x", "max-buckets"),
                        ("continuation-token=not%20a%20token", "continuation-token")):
        status, _, body = raw.request("GET", "/", query)
        err = parse_error(body)
        assert (status, err["Code"], err["ArgumentName"]) == (400, "InvalidArgument", name)


def test_standard_headers_come_back_exactly_as_sent(s3, bucket):
    sent = {"ContentEncoding": "deflate, gzip", "CacheControl": "no-cache,  max-age=0",
            "ContentDisposition": 'attachment; filename="a b.txt"',
            "ContentLanguage": "en-GB, fr"}
    s3.put_object(Bucket=bucket, Key="h", Body=b"x", **sent)
    for read in (s3.head_object, s3.get_object):
        got = read(Bucket=bucket, Key="h")
        assert {name: got[name] for name in sent} == sent


def test_aws_chunked_is_still_removed_from_content_encoding(raw, s3, bucket):
    data = b"payload" * 100
    crc = zlib.crc32(data).to_bytes(4, "big")
    body = encode_chunked(data, 256, trailers={
        "x-amz-checksum-crc32": base64.b64encode(crc).decode()})
    for encoding, stored in (("aws-chunked", None), ("aws-chunked, gzip", "gzip"),
                             ("gzip,aws-chunked", "gzip")):
        headers = {"x-amz-decoded-content-length": str(len(data)), "content-encoding": encoding,
                   "x-amz-trailer": "x-amz-checksum-crc32", "content-length": str(len(body))}
        status, _, _ = raw.request("PUT", f"/{bucket}/enc", headers=headers, body=body,
                                   payload_hash=STREAMING_UNSIGNED_PAYLOAD_TRAILER)
        assert status == 200, encoding
        assert s3.head_object(Bucket=bucket, Key="enc").get("ContentEncoding") == stored


def _chunked_put(client: Raw, path: str, headers: dict[str, str], body: bytes,
                 payload_hash: str | None = None) -> bytes:
    """A signed PUT framed with HTTP chunked transfer coding, no Content-Length."""
    signed = client.signed_headers("PUT", path, headers={**headers,
                                                      "transfer-encoding": "chunked"},
                                payload_hash=payload_hash or "UNSIGNED-PAYLOAD")
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
    framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    with client.connect() as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\n{head}connection: close\r\n\r\n".encode()
                     + framed)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_chunked_upload_without_a_length_is_refused(raw, s3, bucket):
    reply = _chunked_put(raw, f"/{bucket}/unknown-length", {}, b"hello")
    status_line, _, rest = reply.partition(b"\r\n")
    # AWS answers 501 NotImplemented naming Transfer-Encoding (not 411).
    assert status_line == b"HTTP/1.1 501 Not Implemented", reply
    err = parse_error(rest.partition(b"\r\n\r\n")[2])
    assert (err["Code"], err["Header"]) == ("NotImplemented", "Transfer-Encoding")
    assert_absent(s3, bucket, "unknown-length")


def test_aws_chunked_needs_a_decoded_length_without_content_length(raw, s3, bucket):
    data = b"streamed" * 50
    body = encode_chunked(data, 128, trailers={})
    headers = {"content-encoding": "aws-chunked", "x-amz-trailer": ""}
    reply = _chunked_put(raw, f"/{bucket}/s", headers, body,
                         payload_hash=STREAMING_UNSIGNED_PAYLOAD_TRAILER)
    assert reply.startswith(b"HTTP/1.1 411 "), reply
    assert b"<Code>MissingContentLength</Code>" in reply
    assert_absent(s3, bucket, "s")
    # With x-amz-decoded-content-length, HTTP chunked framing is fine.
    reply = _chunked_put(raw, f"/{bucket}/s", {**headers,
                                               "x-amz-decoded-content-length": str(len(data))},
                         body, payload_hash=STREAMING_UNSIGNED_PAYLOAD_TRAILER)
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    assert s3.get_object(Bucket=bucket, Key="s")["Body"].read() == data
