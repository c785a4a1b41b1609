"""Error format, authentication, tenancy, limits and hostile input: every refusal
is an S3 XML error and nothing half-written ever becomes visible."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import zlib
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from protocols.s3.chunked import encode_chunked
from protocols.s3.sigv4 import (
    STREAMING_PAYLOAD,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    sha256_hex,
    sign_request,
)
from tests.s3.conftest import S3Node, Server
from tests.s3.support import code_of


class Raw:
    """Hand-made (optionally signed) requests, for what SDKs will not send."""

    def __init__(self, node) -> None:
        self.node = node
        parts = urlsplit(node.s3_url)
        self.host, self.port = parts.hostname, parts.port
        self.hostport = f"{self.host}:{self.port}"

    def signed_headers(self, method: str, path: str, query: str = "", headers=None,
                       body: bytes = b"", payload_hash: str | None = None,
                       host: str | None = None, keys: tuple[str, str] | None = None):
        ak, sk = keys or (self.node.access_key, self.node.secret_key)
        hdrs = {"host": host or self.hostport, **(headers or {})}
        signed = sign_request(method, path, query, hdrs, access_key=ak, secret_key=sk,
                              region=self.node.region, payload_hash=payload_hash, body=body)
        return signed

    def signed_head(self, method: str, path: str, headers=None,
                    keys: tuple[str, str] | None = None) -> bytes:
        """A signed (UNSIGNED-PAYLOAD) request head, for writing to a socket by hand."""
        signed = self.signed_headers(method, path, headers=headers,
                                     payload_hash=UNSIGNED_PAYLOAD, keys=keys)
        fields = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
        return f"{method} {path} HTTP/1.1\r\n{fields}\r\n".encode()

    def connect(self) -> socket.socket:
        """A plain socket to the server."""
        return socket.create_connection((self.host, self.port), timeout=30)

    def request(self, method: str, path: str, query: str = "", headers=None, body: bytes = b"",
                *, sign: bool = True, payload_hash: str | None = None, host: str | None = None,
                keys: tuple[str, str] | None = None):
        if sign:
            out = self.signed_headers(method, path, query, headers, body, payload_hash, host,
                                      keys).headers
        else:
            out = {"host": host or self.hostport, **(headers or {})}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, path + (f"?{query}" if query else ""), skip_host=True,
                            skip_accept_encoding=True)
            for name, value in out.items():
                conn.putheader(name, value)
            if not any(n.lower() == "content-length" for n in out):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def parse_error(body: bytes) -> dict[str, str]:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


@pytest.fixture
def raw(node) -> Raw:
    return Raw(node)


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_error_document_format(raw, bucket):
    status, headers, body = raw.request("GET", f"/{bucket}/missing.txt")
    assert status == 404
    err = parse_error(body)
    assert err["Code"] == "NoSuchKey"
    assert err["Message"] and err["Resource"] == f"/{bucket}/missing.txt"
    assert err["RequestId"] == headers["x-amz-request-id"]
    assert headers["content-type"] == "application/xml"


def test_authentication_failures(raw, node, bucket):
    status, _, body = raw.request("GET", f"/{bucket}", sign=False)
    assert status == 403 and parse_error(body)["Code"] == "AccessDenied"
    status, _, body = raw.request("GET", f"/{bucket}", keys=(node.access_key, "wrong" * 8))
    assert status == 403 and parse_error(body)["Code"] == "SignatureDoesNotMatch"
    status, _, body = raw.request("GET", f"/{bucket}", keys=("AKNOSUCHKEY0000", "x" * 40))
    assert status == 403 and parse_error(body)["Code"] == "InvalidAccessKeyId"
    status, _, body = raw.request("GET", "/", headers={"Authorization": "AWS abc:def"},
                                  sign=False)
    assert status == 400 and parse_error(body)["Code"] == "InvalidRequest"
    # A signature that is not even hex does not match, like any other.
    good = raw.signed_headers("GET", f"/{bucket}").headers
    for forged in ("g" * 64, "<&>\u00e9", "abc"):
        headers = {**good, "Authorization": good["Authorization"].rsplit("=", 1)[0] + "="
                   + forged}
        status, _, body = raw.request("GET", f"/{bucket}", headers=headers, sign=False)
        assert status == 403, forged
        err = parse_error(body)
        assert err["Code"] == "SignatureDoesNotMatch"
        # A byte that is not UTF-8 (http.client sends latin-1) shows as U+FFFD.
        assert err["SignatureProvided"] == forged.lower().replace("\u00e9", "\ufffd")


def test_tenant_isolation(node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"mine")
    other = node.client(*node.create_account("intruder@example.com"))
    other.create_bucket(Bucket=f"{bucket}-other")
    assert [b["Name"] for b in other.list_buckets()["Buckets"]] == [f"{bucket}-other"]
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    attempts = [
        lambda: other.get_object(Bucket=bucket, Key="secret.txt"),
        lambda: other.head_object(Bucket=bucket, Key="secret.txt"),
        lambda: other.put_object(Bucket=bucket, Key="x", Body=b"evil"),
        lambda: other.delete_object(Bucket=bucket, Key="secret.txt"),
        lambda: other.list_objects_v2(Bucket=bucket),
        lambda: other.delete_bucket(Bucket=bucket),
        lambda: other.copy_object(Bucket=f"{bucket}-other", Key="stolen",
                                  CopySource=f"{bucket}/secret.txt"),
        lambda: other.create_multipart_upload(Bucket=bucket, Key="m"),
        lambda: other.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "secret.txt"}]}),
    ]
    for attempt in attempts:
        with pytest.raises(ClientError) as exc:
            attempt()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3.get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == b"mine"
    assert_absent(s3, bucket, "x")


def test_bad_keys(s3, bucket):
    for key, code in [("a/../b", "InvalidArgument"), ("../up", "InvalidArgument"),
                      ("nul\x00byte", "InvalidArgument"), ("k" * 1025, "KeyTooLongError")]:
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert code_of(exc) == code, key
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"x")  # exactly the limit is fine
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["k" * 1024]


def test_checksum_and_digest_mismatches_store_nothing(raw, s3, bucket):
    data = b"some bytes" * 1000
    bad_crc = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
    cases = [
        ({"x-amz-checksum-crc32": bad_crc}, None, "BadDigest"),
        ({"Content-MD5": base64.b64encode(b"0" * 16).decode()}, None, "BadDigest"),
        ({}, sha256_hex(b"other"), "XAmzContentSHA256Mismatch"),
    ]
    for i, (headers, payload_hash, code) in enumerate(cases):
        status, _, body = raw.request("PUT", f"/{bucket}/bad{i}", headers=headers, body=data,
                                      payload_hash=payload_hash)
        assert status == 400 and parse_error(body)["Code"] == code
        assert_absent(s3, bucket, f"bad{i}")


def test_a_signed_one_chunk_body_is_stored_under_its_verified_hash(raw, node, s3, bucket):
    # One chunk past the inline limit: its id is the signed payload hash,
    # taken only once the body was checked against it.
    data = os.urandom(300_000)
    status, _, _ = raw.request("PUT", f"/{bucket}/one-chunk", body=data)
    assert status == 200
    files = list(node.data_dir.rglob(sha256_hex(data)))
    assert len(files) == 1 and files[0].read_bytes() == data
    assert s3.get_object(Bucket=bucket, Key="one-chunk")["Body"].read() == data
    # A body that is not what it claims leaves nothing under the claimed id,
    # which other objects with those bytes would otherwise share.
    claimed = sha256_hex(b"claimed")
    status, _, body = raw.request("PUT", f"/{bucket}/liar", body=os.urandom(300_000),
                                  payload_hash=claimed)
    assert status == 400 and parse_error(body)["Code"] == "XAmzContentSHA256Mismatch"
    assert not list(node.data_dir.rglob(claimed))
    assert_absent(s3, bucket, "liar")


def test_aws_chunked_signed_and_trailer(raw, s3, bucket):
    data = os.urandom(200_000)
    # Signed chunks, verified one by one (Content-Length is left unsigned: it
    # depends on the signatures).
    headers = {"x-amz-decoded-content-length": str(len(data)), "content-encoding": "aws-chunked"}
    for key, flip in [("signed", False), ("tampered", True)]:
        signed = raw.signed_headers("PUT", f"/{bucket}/{key}", headers=headers,
                                    payload_hash=STREAMING_PAYLOAD)
        body = bytearray(encode_chunked(data, 65536, signing=signed.context))
        if flip:  # one payload byte: that chunk's signature no longer holds
            body[len(body) // 2] ^= 1
        status, _, resp = _send(raw, "PUT", f"/{bucket}/{key}",
                                {**signed.headers, "content-length": str(len(body))}, bytes(body))
        if flip:
            assert status == 403 and parse_error(resp)["Code"] == "SignatureDoesNotMatch"
            assert_absent(s3, bucket, key)
        else:
            assert status == 200
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    # Unsigned chunks with a CRC32 trailer: right, wrong, and truncated.
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    for key, trailer, cut, code in [
        ("trail-ok", crc, 0, None),
        ("trail-bad", base64.b64encode(b"\0\0\0\0").decode(), 0, "BadDigest"),
        ("trail-cut", crc, 40, "IncompleteBody"),
    ]:
        body = encode_chunked(data, 65536, trailers={"x-amz-checksum-crc32": trailer})
        if cut:
            body = body[:-cut]
        hdrs = {"x-amz-decoded-content-length": str(len(data)),
                "content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                "content-length": str(len(body))}
        signed = raw.signed_headers("PUT", f"/{bucket}/{key}", headers=hdrs,
                                    payload_hash=STREAMING_UNSIGNED_PAYLOAD_TRAILER)
        status, _, resp = _send(raw, "PUT", f"/{bucket}/{key}", signed.headers, body)
        if code is None:
            assert status == 200
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
        else:
            assert status == 400 and parse_error(resp)["Code"] == code, key
            assert_absent(s3, bucket, key)


def _send(raw: Raw, method: str, path: str, headers, body: bytes):
    conn = http.client.HTTPConnection(raw.host, raw.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_content_length_larger_than_body(raw, s3, bucket):
    """2 GB declared, 10 bytes sent, then the client stops sending: no object."""
    head = raw.signed_head("PUT", f"/{bucket}/liar", {"content-length": "2000000000"})
    with raw.connect() as sock:
        sock.sendall(head + b"0123456789")
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    # The connection ends mid-body: hypercorn itself answers 400 (h11 sees the
    # EOF before the app can); what matters is that nothing was stored.
    if reply:
        assert reply.startswith(b"HTTP/1.1 400")
    assert_absent(s3, bucket, "liar")


def _expect_continue_put(raw, path: str, body: bytes, keys=None) -> bytes:
    """PUT with ``Expect: 100-continue``: the body goes only after a 100."""
    head = raw.signed_head("PUT", path, {"content-length": str(len(body)),
                                         "expect": "100-continue"}, keys=keys)
    with raw.connect() as sock:
        sock.sendall(head)
        first = sock.recv(65536)
        if not first.startswith(b"HTTP/1.1 100"):
            return first  # a final answer on the head alone
        sock.sendall(body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        return reply


def test_expect_continue_is_answered_after_authentication(raw, node, s3, bucket):
    refused = _expect_continue_put(raw, f"/{bucket}/k", b"x" * 1000,
                                   keys=(node.access_key, "wrong" * 8))
    assert refused.startswith(b"HTTP/1.1 403")
    assert b"SignatureDoesNotMatch" in refused and b"connection: close" in refused.lower()
    refused = _expect_continue_put(raw, f"/{bucket}-absent/k", b"x" * 1000)
    assert refused.startswith(b"HTTP/1.1 404")
    assert_absent(s3, bucket, "k")
    accepted = _expect_continue_put(raw, f"/{bucket}/k", b"x" * 1000)
    assert accepted.startswith(b"HTTP/1.1 200")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory):
    """A server that gives a stalled body one second, not twenty."""
    server = Server(tmp_path_factory.mktemp("s3stall"), body_timeout=1.0)
    server.start()
    yield server
    server.stop()


def test_stalled_body_is_request_timeout(impatient_server):
    node = S3Node(impatient_server, *impatient_server.new_credentials())
    raw, s3 = Raw(node), node.client()
    s3.create_bucket(Bucket="stalls")
    head = raw.signed_head("PUT", "/stalls/slow", {"content-length": "100"})
    with raw.connect() as sock:
        # Ten of the hundred bytes, then nothing: the client is still there.
        sock.sendall(head + b"0123456789")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert parse_error(rest.partition(b"\r\n\r\n")[2])["Code"] == "RequestTimeout"
    assert_absent(s3, "stalls", "slow")


def test_create_bucket_without_content_length(raw, node, s3):
    # What `curl -X PUT` sends: no Content-Length, no body.
    name = f"nolen-{os.urandom(4).hex()}"
    # An object upload still has to say how long it is.
    for path, status in ((f"/{name}", b"200"), (f"/{name}/k", b"411")):
        with raw.connect() as sock:
            sock.sendall(raw.signed_head("PUT", path, {"connection": "close"}))
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 " + status), (path, reply)
    s3.head_bucket(Bucket=name)


def test_blank_authorization_is_anonymous(raw, bucket):
    for value in ("", "   "):
        status, _, body = raw.request("GET", f"/{bucket}", headers={"authorization": value},
                                      sign=False)
        assert status == 403 and parse_error(body)["Code"] == "AccessDenied", repr(value)


def test_hostile_xml(raw, bucket):
    bombs = [
        b"<Delete><Object><Key>a</Key></Object>",  # truncated
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<Delete><Object><Key>&b;</Key></Object></Delete>",  # entity expansion
        b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;'
        b"</Key></Object></Delete>",  # external entity
        b"<Nope/>",
    ]
    for doc in bombs:
        status, _, body = raw.request("POST", f"/{bucket}", "delete=", body=doc,
                                      headers={"content-type": "application/xml"})
        assert status == 400 and parse_error(body)["Code"] == "MalformedXML", doc
    status, _, body = raw.request("PUT", f"/{bucket}", "versioning=",
                                  body=b"<VersioningConfiguration><Status>Maybe</Status>"
                                       b"</VersioningConfiguration>")
    assert status == 400 and parse_error(body)["Code"] == "MalformedXML"
    huge = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 200_000 + b"</Delete>"
    status, _, body = raw.request("POST", f"/{bucket}", "delete=", body=huge)
    assert status == 400 and parse_error(body)["Code"] == "MaxMessageLengthExceeded"


def test_oversized_headers_and_metadata(raw, s3, bucket):
    status, _, body = raw.request("GET", f"/{bucket}", headers={"x-pad": "p" * 20_000})
    assert status == 400 and parse_error(body)["Code"] == "RequestHeaderSectionTooLarge"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="meta", Body=b"x", Metadata={"big": "v" * 3000})
    assert code_of(exc) == "MetadataTooLarge"
    assert_absent(s3, bucket, "meta")


def test_unsupported_subresources_and_methods(raw, bucket):
    for query in ("policy=", "lifecycle=", "website=", "logging="):
        status, _, body = raw.request("GET", f"/{bucket}", query)
        assert status == 501 and parse_error(body)["Code"] == "NotImplemented", query
    status, _, body = raw.request("PATCH", f"/{bucket}/k")
    assert status == 405 and parse_error(body)["Code"] == "MethodNotAllowed"


def test_encryption_and_object_lock_requests_are_not_implemented(s3, bucket):
    # Stored unencrypted or unlocked, the object would betray the request.
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}
    for extra in ({"ServerSideEncryption": "AES256"},
                  {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/x"},
                  sse_c,
                  {"ObjectLockMode": "GOVERNANCE",
                   "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z"},
                  {"ObjectLockLegalHoldStatus": "ON"}):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="secret", Body=b"x", **extra)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501, extra
        assert code_of(exc) == "NotImplemented", extra
    assert_absent(s3, bucket, "secret")
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="secret", ServerSideEncryption="AES256")
    assert code_of(exc) == "NotImplemented"
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="secret", CopySource={"Bucket": bucket, "Key": "plain"},
                       **sse_c)
    assert code_of(exc) == "NotImplemented"
    assert_absent(s3, bucket, "secret")
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=f"{bucket}-locked", ObjectLockEnabledForBucket=True)
    assert code_of(exc) == "NotImplemented"
    # Explicitly not asking for the lock is an ordinary bucket.
    s3.create_bucket(Bucket=f"{bucket}-plain", ObjectLockEnabledForBucket=False)


def test_virtual_host_addressing(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/vh.txt", Body=b"virtual")
    host = f"{bucket}.localhost:{raw.port}"
    status, _, body = raw.request("GET", "/dir/vh.txt", host=host)
    assert status == 200 and body == b"virtual"
    status, _, body = raw.request("GET", "/", "list-type=2", host=host)
    assert status == 200 and b"<Key>dir/vh.txt</Key>" in body
    status, _, body = raw.request("GET", "/" + quote("dir/vh.txt"), host=host)
    assert body == b"virtual"


def test_rate_limit_answers_429_with_retry_after(node, bucket):
    s3 = node.client()
    codes = []
    for _ in range(400):  # LIST is limited to 50/s per access key, with 1 s of burst
        try:
            s3.list_objects_v2(Bucket=bucket)
        except ClientError as exc:
            codes.append((exc.response["ResponseMetadata"]["HTTPStatusCode"],
                          exc.response["Error"]["Code"],
                          exc.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after")))
            if len(codes) >= 3:
                break
    assert codes, "no request was rate limited"
    assert all(c[:2] == (429, "TooManyRequests") and int(c[2]) >= 1 for c in codes)
    # Another class (GET) of the same key is not affected.
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


@pytest.mark.parametrize("target", ["/b/%AE%8A-", "/%FFbucket", "/b?delimiter=%FF"])
def test_non_utf8_uri_is_invalid_uri(node, target):
    import httpx

    r = httpx.get(node.s3_url + target)
    assert r.status_code == 400
    assert "<Code>InvalidURI</Code>" in r.text
