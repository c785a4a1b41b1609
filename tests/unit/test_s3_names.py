"""Bucket-name and object-key validation."""

from __future__ import annotations

import pytest

from protocols.s3.errors import S3Error
from protocols.s3.names import (
    bucket_name_problem,
    is_valid_bucket_name,
    validate_bucket_name,
    validate_key_prefix,
    validate_object_key,
)


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "my-bucket",
        "my.bucket.name",
        "123",
        "a1-b2.c3",
        "b" * 63,
        "xn-single-dash",
        "bucket-s3alias-not-suffix",
        "1.2.3",  # not four groups, so not IP-shaped
        "192.168.1.1a",
    ],
)
def test_valid_bucket_names(name):
    validate_bucket_name(name)
    assert is_valid_bucket_name(name)
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ab", "characters long"),
        ("b" * 64, "characters long"),
        ("", "characters long"),
        ("My-Bucket", "lowercase"),
        ("my_bucket", "lowercase"),
        ("-bucket", "begin and end"),
        ("bucket-", "begin and end"),
        (".bucket", "begin and end"),
        ("bucket.", "begin and end"),
        ("bu cket", "lowercase"),
        ("bück", "lowercase"),
        ("my..bucket", "'..'"),
        ("my.-bucket", "'..'"),
        ("my-.bucket", "'..'"),
        ("192.168.5.4", "IP address"),
        ("xn--bucket", "xn--"),
        ("sthree-bucket", "sthree-"),
        ("amzn-s3-demo-bucket", "amzn-s3-demo-"),
        ("bucket-s3alias", "-s3alias"),
        ("bucket--ol-s3", "--ol-s3"),
        ("bucket.mrap", ".mrap"),
        ("bucket--x-s3", "--x-s3"),
        ("bucket--table-s3", "--table-s3"),
    ],
)
def test_invalid_bucket_names(name, reason):
    problem = bucket_name_problem(name)
    assert problem is not None and reason in problem
    assert not is_valid_bucket_name(name)
    with pytest.raises(S3Error) as info:
        validate_bucket_name(name)
    err = info.value
    assert (err.code, err.status) == ("InvalidBucketName", 400)
    assert err.extra == {"BucketName": name}
    assert err.detail is not None and reason in err.detail


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "dir/file.txt",
        "..hidden",
        "a..b",
        "file.",
        ".profile",
        "dir/.git/config",
        "dir/..x/y",
        "a//b",
        "/leading/slash",
        "trailing/",
        "spaces and\ttabs\nnewlines",
        "unicode/\u00fc\u2603\U0001f600",
        "k" * 1024,
        "\u00e9" * 512,  # 1024 UTF-8 bytes
    ],
)
def test_valid_object_keys(key):
    validate_object_key(key)


@pytest.mark.parametrize(
    "key", [".", "..", "./a", "../etc/passwd", "a/../b", "a/./b", "a/.", "a/..", "a/../../.."]
)
def test_dot_segments_are_refused(key):
    with pytest.raises(S3Error) as info:
        validate_object_key(key)
    assert info.value.code == "InvalidArgument"
    assert "'.'" in info.value.message


def test_empty_key_is_invalid_argument():
    with pytest.raises(S3Error) as info:
        validate_object_key("")
    assert info.value.code == "InvalidArgument"


def test_nul_is_refused():
    with pytest.raises(S3Error) as info:
        validate_object_key("a\x00b")
    assert info.value.code == "InvalidArgument"
    assert "NUL" in info.value.message


def test_lone_surrogate_is_refused():
    with pytest.raises(S3Error) as info:
        validate_object_key("bad\udcff")
    assert info.value.code == "InvalidArgument"


@pytest.mark.parametrize(("key", "size"), [("k" * 1025, 1025), ("\u00e9" * 513, 1026)])
def test_too_long_keys(key, size):
    with pytest.raises(S3Error) as info:
        validate_object_key(key)
    err = info.value
    assert (err.code, err.status) == ("KeyTooLongError", 400)
    assert err.extra == {"Size": str(size), "MaxSizeAllowed": "1024"}


def test_prefix_validation_allows_partial_segments():
    for prefix in ("", ".", "..", "a/.", "dir/"):
        validate_key_prefix(prefix)
    with pytest.raises(S3Error) as info:
        validate_key_prefix("p" * 1025)
    assert info.value.code == "KeyTooLongError"
    with pytest.raises(S3Error) as info:
        validate_key_prefix("a\x00")
    assert info.value.code == "InvalidArgument"


@pytest.mark.parametrize("name", ["ab", "My-Bucket", "192.168.5.4", "bucket--x-s3"])
def test_storage_bucket_name_error_is_the_same_s3_error(name):
    """The core's InvalidBucketName (storage/names.py) answers as S3's own check."""
    from protocols.s3.storage_errors import from_storage_error
    from storage import names
    from storage.errors import InvalidBucketName

    with pytest.raises(InvalidBucketName) as core:
        names.check_bucket_name(name)
    with pytest.raises(S3Error) as s3:
        validate_bucket_name(name)
    err = from_storage_error(core.value)
    assert (err.code, err.status, err.extra) == (s3.value.code, 400, s3.value.extra)


@pytest.mark.parametrize("key", ["", "a/../b", "a\x00b", "k" * 1025, "\u00e9" * 513])
def test_storage_key_error_is_the_same_s3_error(key):
    """The core's InvalidObjectKey / KeyTooLong answer as S3's own key check."""
    from protocols.s3.storage_errors import from_storage_error
    from storage import names
    from storage.errors import StorageError

    with pytest.raises(StorageError) as core:
        names.check_key(key)
    with pytest.raises(S3Error) as s3:
        validate_object_key(key)
    err = from_storage_error(core.value)
    assert (err.code, err.status) == (s3.value.code, 400)
    assert err.extra.get("ArgumentName") == s3.value.extra.get("ArgumentName")
    if err.code == "KeyTooLongError":
        assert err.extra == s3.value.extra
