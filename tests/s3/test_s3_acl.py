"""ACLs, honestly: every bucket and object is private to its account.

GetBucketAcl / GetObjectAcl show the owner (the same ID and DisplayName as
ListBuckets) with FULL_CONTROL.  Private canned ACLs and grants to the owner
are accepted; anything that would give someone else access is 501
NotImplemented, never silently accepted.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, replace_body, status_of

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def assert_owner_only(acl: dict, owner: dict) -> None:
    assert acl["Owner"] == owner
    assert acl["Grants"] == [{
        "Grantee": {**owner, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}]


@pytest.fixture
def owner(s3) -> dict:
    return s3.list_buckets()["Owner"]


def test_get_acls_show_the_owner(s3, bucket, owner):
    assert owner["ID"] and owner["DisplayName"]
    assert_owner_only(s3.get_bucket_acl(Bucket=bucket), owner)
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    assert_owner_only(s3.get_object_acl(Bucket=bucket, Key="o"), owner)
    listed = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]["Owner"]
    assert listed == owner
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert code_of(exc) == "NoSuchKey"


def test_private_acls_are_accepted(s3, bucket, owner):
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x", ACL="private")
    s3.put_object(Bucket=bucket, Key="b", Body=b"x", ACL="bucket-owner-full-control")
    s3.put_object_acl(Bucket=bucket, Key="a", ACL="bucket-owner-full-control")
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "a"},
                   ACL="private")
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", ACL="private")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=up)
    s3.create_bucket(Bucket=f"{bucket}-p", ACL="private")
    # Grants naming only the owner, with FULL_CONTROL, say nothing new.
    s3.put_object(Bucket=bucket, Key="d", Body=b"x", GrantFullControl=f'id="{owner["ID"]}"')
    policy = {"Owner": owner, "Grants": [{
        "Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"}]}
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    s3.put_object_acl(Bucket=bucket, Key="d", AccessControlPolicy=policy)
    assert_owner_only(s3.get_bucket_acl(Bucket=bucket), owner)
    assert_owner_only(s3.get_object_acl(Bucket=bucket, Key="d"), owner)


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read",
                                 "aws-exec-read", "log-delivery-write"])
def test_sharing_canned_acls_are_not_implemented(s3, bucket, acl):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    attempts = [
        lambda: s3.put_bucket_acl(Bucket=bucket, ACL=acl),
        lambda: s3.put_object_acl(Bucket=bucket, Key="o", ACL=acl),
        lambda: s3.put_object(Bucket=bucket, Key="new", Body=b"x", ACL=acl),
        lambda: s3.copy_object(Bucket=bucket, Key="new",
                               CopySource={"Bucket": bucket, "Key": "o"}, ACL=acl),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="new", ACL=acl),
        lambda: s3.create_bucket(Bucket=f"{bucket}-x", ACL=acl),
    ]
    for attempt in attempts:
        with pytest.raises(ClientError) as exc:
            attempt()
        assert (status_of(exc), code_of(exc)) == (501, "NotImplemented")
        assert acl in exc.value.response["Error"]["Message"]
    # Nothing was created on the way.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["o"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert f"{bucket}-x" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_grants_to_others_are_not_implemented(node, s3, bucket, owner):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    other_id = node.client(*node.create_account("grantee@example.com")).list_buckets()[
        "Owner"]["ID"]
    for kw in [{"GrantRead": f'uri="{ALL_USERS}"'}, {"GrantRead": f'id="{other_id}"'},
               {"GrantFullControl": 'emailAddress="someone@example.com"'},
               {"GrantFullControl": f'id="{owner["ID"]}", id="{other_id}"'}]:
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="shared", Body=b"x", **kw)
        assert code_of(exc) == "NotImplemented", kw
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_acl(Bucket=bucket, **kw)
        assert code_of(exc) == "NotImplemented", kw
    policies = [
        [{"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}],
        [{"Grantee": {"Type": "CanonicalUser", "ID": other_id}, "Permission": "FULL_CONTROL"}],
        [{"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "READ"}],
        [],
    ]
    for grants in policies:
        policy = {"Owner": owner, "Grants": grants}
        with pytest.raises(ClientError) as exc:
            s3.put_object_acl(Bucket=bucket, Key="o", AccessControlPolicy=policy)
        assert code_of(exc) == "NotImplemented", grants
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="shared")
    assert status_of(exc) == 404


def test_bad_acl_requests(node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    loose = node.client(parameter_validation=False)
    with pytest.raises(ClientError) as exc:
        loose.put_object(Bucket=bucket, Key="o2", Body=b"x", ACL="everyone-please")
    assert code_of(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="o2", Body=b"x", ACL="private",
                      GrantRead='uri="x"')
    assert code_of(exc) == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=bucket)
    assert code_of(exc) == "MissingRequestBodyError"
    other = node.client(*node.create_account("acl-intruder@example.com"))
    for call in (lambda: other.get_bucket_acl(Bucket=bucket),
                 lambda: other.get_object_acl(Bucket=bucket, Key="o"),
                 lambda: other.put_object_acl(Bucket=bucket, Key="o", ACL="private")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == "AccessDenied"


def test_malformed_acl_body(node, s3, bucket, owner):
    policy = {"Owner": owner, "Grants": []}
    for body in (b"<AccessControlPolicy><Nope/></AccessControlPolicy>", b"<Other/>", b"<<<"):
        client = node.client(request_checksum_calculation="when_required")
        client.meta.events.register("before-sign.s3.PutBucketAcl", replace_body(body))
        with pytest.raises(ClientError) as exc:
            client.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
        assert code_of(exc) == "MalformedACLError", body
