"""DeleteBucket of a bucket whose only content is multipart uploads in progress.

S3 deletes the bucket and aborts those uploads; their parts' chunk references
must be released exactly once, in the same transaction.  Runs on SQLite and on
PostgreSQL metadata (the bucket row is locked differently on each).
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from tests.s3.conftest import Server
from tests.s3.support import code_of

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """This module's server: one on SQLite, then the PostgreSQL one."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_s3_server")
    server = Server(tmp_path_factory.mktemp("s3del"))
    server.start()
    request.addfinalizer(server.stop)
    return server


def _mismatches(server):
    from storage.integrity import mismatches

    async def run():
        return await mismatches(server.services.db)

    return server.call(run)


def test_delete_bucket_aborts_its_uploads(s3, node):
    payload = os.urandom(6 * MiB)
    # The same bytes as an object of another bucket: their chunks are shared,
    # so a double release would show as a lost reference of "keep".
    s3.create_bucket(Bucket="keeper")
    s3.put_object(Bucket="keeper", Key="keep", Body=payload)
    s3.create_bucket(Bucket="doomed")
    for key in ("a", "b"):
        up = s3.create_multipart_upload(Bucket="doomed", Key=key)["UploadId"]
        s3.upload_part(Bucket="doomed", Key=key, UploadId=up, PartNumber=1, Body=payload)
        s3.upload_part(Bucket="doomed", Key=key, UploadId=up, PartNumber=2, Body=b"tail")
    response = s3.delete_bucket(Bucket="doomed")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="doomed")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="doomed", Key="a", UploadId=up, PartNumber=3, Body=b"late")
    assert code_of(exc) == "NoSuchBucket"
    assert not _mismatches(node.server)
    assert s3.get_object(Bucket="keeper", Key="keep")["Body"].read() == payload
    # The name is free again, and empty.
    s3.create_bucket(Bucket="doomed")
    assert s3.list_multipart_uploads(Bucket="doomed").get("Uploads", []) == []


def test_delete_bucket_with_objects_is_still_refused(s3, node):
    s3.create_bucket(Bucket="full")
    s3.put_object(Bucket="full", Key="k", Body=b"x")
    s3.create_multipart_upload(Bucket="full", Key="m")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="full")
    assert code_of(exc) == "BucketNotEmpty"
    # Refused as a whole: the upload is still there.
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="full")["Uploads"]] == ["m"]
    assert not _mismatches(node.server)
