"""One object, every surface: a file uploaded through v1-pro is the same
object (same bytes) through v2-objects, S3 (boto3), SFTP (paramiko) and the
Simple REST API, and files written through each of them are listed and
linked by v1-pro."""

from __future__ import annotations

import io

import boto3
import httpx
import paramiko
from botocore.config import Config

from tests.harness import NodeProcess
from tests.rest.test_v1pro_support import auth, pro_user

SFTP_PASSWORD = "sftp-password-19"


def test_same_object_on_every_surface(node: NodeProcess) -> None:
    user, key = pro_user(node)
    r = user.client.post("/api/sftp", json={"password": SFTP_PASSWORD})
    assert r.status_code == 200, r.text
    sftp_user, sftp_port = r.json()["username"], r.json()["port"]
    s3 = boto3.client("s3", endpoint_url=node.s3_url, region_name=node.region,
                      aws_access_key_id=user.access_key, aws_secret_access_key=user.secret_key,
                      config=Config(retries={"max_attempts": 1},
                                    s3={"addressing_style": "path"}))
    transport = paramiko.Transport(("127.0.0.1", sftp_port))
    transport.connect(username=sftp_user, password=SFTP_PASSWORD)
    sftp = paramiko.SFTPClient.from_transport(transport)
    v2 = f"{node.web_url}/v2/buckets/{user.bucket}/objects"
    v2_auth = {"Authorization": f"Bearer {user.access_key}:{user.secret_key}"}
    try:
        data = bytes(range(256)) * 300
        up = httpx.post(f"{node.web_url}/api/v1/upload",
                        params={"filename": "report.bin", "path": "/Shared/"},
                        headers=auth(key), content=data)
        assert up.status_code == 200, up.text

        listed = httpx.get(v2, params={"prefix": "Shared/"}, headers=v2_auth).json()
        assert [(o["key"], o["size"]) for o in listed["objects"]] == [
            ("Shared/report.bin", len(data))]
        assert httpx.get(f"{v2}/Shared/report.bin", headers=v2_auth).content == data
        assert s3.get_object(Bucket=user.bucket, Key="Shared/report.bin")["Body"].read() == data
        with sftp.open(f"/{user.bucket}/Shared/report.bin") as f:
            assert f.read() == data
        simple = httpx.get(f"{node.web_url}/api/v1/files", params={"prefix": "Shared/"},
                           headers=user.api_headers).json()["files"]
        assert [f["key"] for f in simple] == ["Shared/report.bin"]
        got = httpx.get(f"{node.web_url}/api/v1/files/{simple[0]['id']}",
                        headers=user.api_headers)
        assert got.content == data

        # ... and the other way round.
        written = {"from-s3.txt": b"s3 bytes", "from-sftp.txt": b"sftp bytes",
                   "from-v2.txt": b"v2 bytes", "from-rest.txt": b"rest bytes"}
        s3.put_object(Bucket=user.bucket, Key="Shared/from-s3.txt", Body=written["from-s3.txt"])
        sftp.putfo(io.BytesIO(written["from-sftp.txt"]), f"/{user.bucket}/Shared/from-sftp.txt")
        assert httpx.put(f"{v2}/Shared/from-v2.txt", headers=v2_auth,
                         content=written["from-v2.txt"]).status_code == 201
        assert httpx.post(f"{node.web_url}/api/v1/files", headers=user.api_headers,
                          params={"key": "Shared/from-rest.txt"},
                          content=written["from-rest.txt"]).status_code == 201
        page = httpx.get(f"{node.web_url}/api/v1/files", params={"path": "/Shared/"},
                         headers=auth(key)).json()
        by_name = {f["name"]: f for f in page["files"]}
        assert sorted(by_name) == sorted([*written, "report.bin"])
        for name, content in written.items():
            assert by_name[name]["size"] == len(content)
            assert httpx.get(by_name[name]["link"]).content == content, name
    finally:
        sftp.close()
        transport.close()
        user.client.close()
