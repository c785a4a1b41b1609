"""POST Object (browser form uploads) against a running node: forms from boto3's
generate_presigned_post, the legacy HMAC-SHA1 form, policy conditions, size
ranges, bad signatures and malformed bodies — none of which leave an object."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest
from botocore.exceptions import ClientError

from protocols.multipart_form import FormDataError, FormParser, PartData, PartEnd, PartStart
from protocols.s3.post_policy import parse_policy


def presigned(s3, bucket: str, key: str = "up/${filename}", **kw) -> dict:
    return s3.generate_presigned_post(bucket, key, **kw)


def post(form: dict, body: bytes = b"hello world", filename: str = "hello.txt",
         **extra) -> httpx.Response:
    return httpx.post(form["url"], data={**form["fields"], **extra},
                      files={"file": (filename, body)})


def error_code(r: httpx.Response) -> str:
    return r.text.split("<Code>")[1].split("</Code>")[0]


def missing(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


def test_presigned_post_stores_object_with_fields(s3, bucket):
    form = presigned(s3, bucket, Fields={"Content-Type": "text/plain", "x-amz-meta-a": "b"},
                     Conditions=[{"Content-Type": "text/plain"}, {"x-amz-meta-a": "b"},
                                 ["content-length-range", 1, 100]])
    r = post(form)
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket=bucket, Key="up/hello.txt")
    assert got["Body"].read() == b"hello world"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"a": "b"}
    assert r.headers["etag"] == got["ETag"]


def test_encryption_field_is_not_implemented(s3, bucket):
    fields = {"x-amz-server-side-encryption": "AES256"}
    form = presigned(s3, bucket, Fields=fields, Conditions=[fields])
    r = post(form)
    assert r.status_code == 501 and error_code(r) == "NotImplemented"
    assert missing(s3, bucket, "up/hello.txt")


def test_success_action_status_201_and_redirect(s3, bucket):
    form = presigned(s3, bucket, "k201", Fields={"success_action_status": "201"},
                     Conditions=[{"success_action_status": "201"}])
    r = post(form)
    assert r.status_code == 201
    assert "<Key>k201</Key>" in r.text and f"<Bucket>{bucket}</Bucket>" in r.text
    back = "https://example.com/done"
    form = presigned(s3, bucket, "k303", Fields={"success_action_redirect": back},
                     Conditions=[{"success_action_redirect": back}])
    r = post(form)
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"{back}?bucket={bucket}&key=k303&etag=%22")


def test_policy_violations_are_refused_and_store_nothing(s3, bucket):
    form = presigned(s3, bucket, "small", Conditions=[["content-length-range", 2, 10]])
    r = post(form, b"x" * 11)
    assert (r.status_code, error_code(r)) == (400, "EntityTooLarge")
    r = post(form, b"x")
    assert (r.status_code, error_code(r)) == (400, "EntityTooSmall")
    r = httpx.post(form["url"], data={**form["fields"], "x-amz-meta-z": "1"},
                   files={"file": ("f", b"abc")})
    assert (r.status_code, error_code(r)) == (403, "AccessDenied")
    assert "Extra input fields: x-amz-meta-z" in r.text
    fields = dict(form["fields"], key="other")
    r = httpx.post(form["url"], data=fields, files={"file": ("f", b"abc")})
    assert (r.status_code, error_code(r)) == (403, "AccessDenied")
    assert missing(s3, bucket, "small") and missing(s3, bucket, "other")


def test_bad_signature_unknown_key_and_anonymous(s3, bucket):
    form = presigned(s3, bucket, "sig")
    bad = dict(form["fields"], **{"x-amz-signature": "0" * 64})
    r = httpx.post(form["url"], data=bad, files={"file": ("f", b"abc")})
    assert (r.status_code, error_code(r)) == (403, "SignatureDoesNotMatch")
    cred = form["fields"]["x-amz-credential"].split("/", 1)[1]
    unknown = dict(form["fields"], **{"x-amz-credential": "CSNOSUCHKEY00000000X/" + cred})
    r = httpx.post(form["url"], data=unknown, files={"file": ("f", b"abc")})
    assert (r.status_code, error_code(r)) == (403, "InvalidAccessKeyId")
    r = httpx.post(form["url"], data={"key": "anon"}, files={"file": ("f", b"abc")})
    assert (r.status_code, error_code(r)) == (403, "AccessDenied")
    assert missing(s3, bucket, "sig") and missing(s3, bucket, "anon")


def test_other_tenant_cannot_post_into_bucket(node, s3, bucket):
    other = node.client(*node.create_account("poster@example.com"))
    form = presigned(other, bucket, "intruder")
    r = post(form)
    assert r.status_code in (403, 404)
    assert missing(s3, bucket, "intruder")


def test_legacy_hmac_sha1_form(node, s3, bucket):
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = base64.b64encode(json.dumps({"expiration": expires, "conditions": [
        {"bucket": bucket}, ["starts-with", "$key", "foo"], {"acl": "private"},
        ["content-length-range", 0, 1024]]}).encode())
    signature = base64.b64encode(hmac.new(node.secret_key.encode(), policy, hashlib.sha1).digest())
    fields = {"key": "foo.txt", "AWSAccessKeyId": node.access_key, "acl": "private",
              "signature": signature.decode(), "policy": policy.decode()}
    r = httpx.post(f"{node.s3_url}/{bucket}", data=fields, files={"file": ("f", b"bar")})
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="foo.txt")["Body"].read() == b"bar"


def test_not_a_form_and_truncated_form(s3, bucket):
    form = presigned(s3, bucket, "trunc")
    r = httpx.post(form["url"], content=b"key=x", headers={"content-type": "text/plain"})
    assert (r.status_code, error_code(r)) == (412, "PreconditionFailed")
    body = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (n.encode(), v.encode()) for n, v in form["fields"].items()
    ) + b'--B\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nabc'
    r = httpx.post(form["url"], content=body,
                   headers={"content-type": "multipart/form-data; boundary=B"})
    assert (r.status_code, error_code(r)) == (400, "MalformedPOSTRequest")
    assert missing(s3, bucket, "trunc")


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_form_parser_any_split(step):
    body = (b"preamble\r\n--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
            b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nline\r\n--xy not yet\r\n--xyz--\r\nepilogue")
    parser = FormParser("xyz")
    events = []
    for i in range(0, len(body), step):
        events += parser.feed(body[i:i + step])
    parser.finish()
    starts = [e for e in events if isinstance(e, PartStart)]
    assert [(s.name, s.filename) for s in starts] == [("a", None), ("file", "f.txt")]
    data = b"".join(e.data for e in events[events.index(starts[1]):] if isinstance(e, PartData))
    assert data == b"line\r\n--xy not yet"
    assert sum(isinstance(e, PartEnd) for e in events) == 2


def test_form_parser_refuses_unterminated_and_headerless():
    parser = FormParser("b")
    parser.feed(b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue')
    with pytest.raises(FormDataError):
        parser.finish()
    with pytest.raises(FormDataError):
        FormParser("b").feed(b"--b\r\nX-Other: 1\r\n\r\nvalue\r\n--b--")


@pytest.mark.parametrize("document", [
    {"conditions": []},  # no expiration
    {"expiration": "2030-01-01 00:00:00+00:00", "conditions": []},
    {"expiration": "2030-01-01T00:00:00Z"},  # no conditions
    {"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", -1, 0]]},
    {"expiration": "2030-01-01T00:00:00Z", "conditions": [["between", "$key", "a"]]},
    {"expiration": "2030-01-01T00:00:00Z", "conditions": [{}]},
    {"expiration": "2030-01-01T00:00:00Z", "conditions": [{"key": "a", "acl": "private"}]},
])
def test_malformed_policies(document):
    from protocols.s3.errors import S3Error
    with pytest.raises(S3Error) as info:
        parse_policy(base64.b64encode(json.dumps(document).encode()).decode())
    assert info.value.code == "InvalidPolicyDocument"
