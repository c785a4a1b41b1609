"""The S3 operation router: method, address and query -> one operation."""

from __future__ import annotations

import pytest

from protocols.s3.router import (
    NOT_IMPLEMENTED_OPS,
    Op,
    action_of,
    rate_class,
    resolve,
    split_address,
)
from storage.authz import Action

DOMAINS = ("s3.example.com", "localhost")


@pytest.mark.parametrize(("method", "path", "query", "headers", "op"), [
    ("GET", "/", {}, {}, Op.LIST_BUCKETS),
    ("HEAD", "/", {}, {}, Op.LIST_BUCKETS),
    ("PUT", "/", {}, {}, Op.METHOD_NOT_ALLOWED),
    ("PUT", "/b", {}, {}, Op.CREATE_BUCKET),
    ("HEAD", "/b", {}, {}, Op.HEAD_BUCKET),
    ("DELETE", "/b", {}, {}, Op.DELETE_BUCKET),
    ("GET", "/b", {}, {}, Op.LIST_OBJECTS),
    ("GET", "/b", {"list-type": "2"}, {}, Op.LIST_OBJECTS_V2),
    ("GET", "/b", {"versions": ""}, {}, Op.LIST_OBJECT_VERSIONS),
    ("GET", "/b", {"uploads": ""}, {}, Op.LIST_MULTIPART_UPLOADS),
    ("GET", "/b", {"location": ""}, {}, Op.GET_BUCKET_LOCATION),
    ("PUT", "/b", {"versioning": ""}, {}, Op.PUT_BUCKET_VERSIONING),
    ("GET", "/b", {"versioning": ""}, {}, Op.GET_BUCKET_VERSIONING),
    ("PUT", "/b", {"tagging": ""}, {}, Op.PUT_BUCKET_TAGGING),
    ("DELETE", "/b", {"tagging": ""}, {}, Op.DELETE_BUCKET_TAGGING),
    ("GET", "/b", {"acl": ""}, {}, Op.GET_BUCKET_ACL),
    ("PUT", "/b", {"cors": ""}, {}, Op.PUT_BUCKET_CORS),
    ("DELETE", "/b", {"cors": ""}, {}, Op.DELETE_BUCKET_CORS),
    ("POST", "/b", {"delete": ""}, {}, Op.DELETE_OBJECTS),
    ("POST", "/b", {}, {}, Op.POST_OBJECT),
    ("PATCH", "/b", {}, {}, Op.METHOD_NOT_ALLOWED),
    ("OPTIONS", "/b/k", {}, {}, Op.PREFLIGHT),
    ("GET", "/b/dir/k", {}, {}, Op.GET_OBJECT),
    ("HEAD", "/b/k", {}, {}, Op.HEAD_OBJECT),
    ("PUT", "/b/k", {}, {}, Op.PUT_OBJECT),
    ("PUT", "/b/k", {}, {"x-amz-copy-source": "/a/b"}, Op.COPY_OBJECT),
    ("PUT", "/b/k", {"partNumber": "1", "uploadId": "u"}, {}, Op.UPLOAD_PART),
    ("PUT", "/b/k", {"partNumber": "1", "uploadId": "u"}, {"x-amz-copy-source": "/a/b"},
     Op.UPLOAD_PART_COPY),
    ("POST", "/b/k", {"uploads": ""}, {}, Op.CREATE_MULTIPART_UPLOAD),
    ("POST", "/b/k", {"uploadId": "u"}, {}, Op.COMPLETE_MULTIPART_UPLOAD),
    ("DELETE", "/b/k", {"uploadId": "u"}, {}, Op.ABORT_MULTIPART_UPLOAD),
    ("GET", "/b/k", {"uploadId": "u"}, {}, Op.LIST_PARTS),
    ("DELETE", "/b/k", {}, {}, Op.DELETE_OBJECT),
    ("GET", "/b/k", {"tagging": ""}, {}, Op.GET_OBJECT_TAGGING),
    ("PUT", "/b/k", {"tagging": ""}, {}, Op.PUT_OBJECT_TAGGING),
    ("DELETE", "/b/k", {"tagging": ""}, {}, Op.DELETE_OBJECT_TAGGING),
    ("HEAD", "/b/k", {"tagging": ""}, {}, Op.METHOD_NOT_ALLOWED),
    ("GET", "/b/k", {"acl": ""}, {}, Op.GET_OBJECT_ACL),
    ("PUT", "/b/k", {"acl": ""}, {}, Op.PUT_OBJECT_ACL),
    ("POST", "/b/k", {}, {}, Op.METHOD_NOT_ALLOWED),
    ("GET", "/b", {"lifecycle": ""}, {}, Op.GET_BUCKET_LIFECYCLE),
    ("DELETE", "/b", {"lifecycle": ""}, {}, Op.DELETE_BUCKET_LIFECYCLE),
    ("PUT", "/b", {"policy": ""}, {}, Op.PUT_BUCKET_POLICY),
    ("GET", "/b/k", {"attributes": ""}, {}, Op.GET_OBJECT_ATTRIBUTES),
    ("POST", "/b/k", {"restore": ""}, {}, Op.RESTORE_OBJECT),
    ("DELETE", "/b", {"accelerate": ""}, {}, Op.UNSUPPORTED_SUBRESOURCE),
])
def test_operations(method, path, query, headers, op):
    bucket, key = split_address("127.0.0.1:9000", path, DOMAINS)
    assert resolve(method, bucket, key, query, headers) is op


@pytest.mark.parametrize(("host", "path", "address"), [
    ("127.0.0.1:9000", "/b/dir/k", ("b", "dir/k")),
    ("127.0.0.1", "/", ("", "")),
    ("[::1]:9000", "/b", ("b", "")),
    ("b.s3.example.com", "/dir/k", ("b", "dir/k")),
    ("B.S3.Example.com:9000", "/", ("b", "")),
    ("my.bucket.localhost:9000", "/k", ("my.bucket", "k")),
    ("s3.example.com", "/b/k", ("b", "k")),  # the bare domain is path style
    ("other.example.com", "/b/k", ("b", "k")),
])
def test_split_address_path_and_virtual_host_style(host, path, address):
    assert split_address(host, path, DOMAINS) == address


def test_virtual_host_root_is_a_bucket_listing_not_list_buckets():
    bucket, key = split_address("b.localhost:9000", "/", DOMAINS)
    assert resolve("GET", bucket, key, {}, {}) is Op.LIST_OBJECTS
    assert resolve("POST", bucket, key, {}, {}) is Op.POST_OBJECT


def test_every_unsupported_subresource_names_a_501_operation():
    from protocols.s3.router import UNSUPPORTED

    for name, methods in UNSUPPORTED.items():
        for method, op in methods.items():
            assert op in NOT_IMPLEMENTED_OPS, (name, method)
            assert resolve(method, "b", "", {name: ""}, {}) is op


@pytest.mark.parametrize(("op", "method", "cls"), [
    (Op.LIST_OBJECTS_V2, "GET", "list"),
    (Op.LIST_PARTS, "GET", "list"),
    (Op.GET_OBJECT, "GET", "read"),
    (Op.GET_BUCKET_TAGGING, "GET", "read"),
    (Op.PUT_OBJECT, "PUT", "write"),
    (Op.DELETE_OBJECTS, "POST", "write"),
    (Op.GET_BUCKET_POLICY, "GET", "read"),
])
def test_rate_class(op, method, cls):
    assert rate_class(op, method) == cls


@pytest.mark.parametrize(("op", "method", "action"), [
    (Op.GET_OBJECT, "GET", Action.READ),
    (Op.HEAD_BUCKET, "HEAD", Action.READ),
    (Op.LIST_OBJECTS_V2, "GET", Action.READ),
    (Op.GET_BUCKET_VERSIONING, "GET", Action.READ),
    (Op.PUT_OBJECT, "PUT", Action.WRITE),
    (Op.POST_OBJECT, "POST", Action.WRITE),
    (Op.DELETE_OBJECTS, "POST", Action.WRITE),
    (Op.UPLOAD_PART, "PUT", Action.WRITE),
    (Op.PUT_OBJECT_TAGGING, "PUT", Action.WRITE),
    (Op.DELETE_BUCKET, "DELETE", Action.MANAGE),
    (Op.PUT_BUCKET_VERSIONING, "PUT", Action.MANAGE),
    (Op.PUT_BUCKET_CORS, "PUT", Action.MANAGE),
])
def test_each_operation_asks_authz_for_the_right_action(op, method, action):
    assert action_of(op, method) is action
