"""SSH exec: the hash commands rclone runs (md5sum, sha1sum, echo), answered
without a shell, against a real node; and the command-line parsing itself."""

from __future__ import annotations

import hashlib
import os

import boto3
import httpx
import pytest
from botocore.config import Config

from protocols.sftp import commands
from tests.harness import NodeProcess
from tests.rest.conftest import signup
from tests.sftp.conftest import SftpUser, paramiko_client, ssh_exec


def _put(su: SftpUser, key: str, data: bytes) -> None:
    with paramiko_client(su).open(f"/{su.user.bucket}/{key}", "wb") as f:
        f.write(data)


def test_rclone_probes_are_answered_as_a_posix_shell_would(sftp_user: SftpUser) -> None:
    assert ssh_exec(sftp_user, "echo ${ShellId}%ComSpec%") == (0, b"%ComSpec%\n", b"")
    # md5sum / sha1sum of an empty stdin: how rclone finds working hash commands.
    assert ssh_exec(sftp_user, "md5sum") == (0, b"d41d8cd98f00b204e9800998ecf8427e  -\n", b"")
    assert ssh_exec(sftp_user, "sha1sum", stdin=b"abc") == (
        0, hashlib.sha1(b"abc").hexdigest().encode() + b"  -\n", b"")


def test_md5sum_and_sha1sum_of_stored_objects(sftp_user: SftpUser) -> None:
    bucket = sftp_user.user.bucket
    data = os.urandom(300_000)
    _put(sftp_user, "dir/it's [x] $HOME;.bin", data)
    quoted = f"/{bucket}/dir/it\\'s\\ \\[x\\]\\ \\$HOME\\;.bin"  # rclone 1.60's quoting
    status, out, err = ssh_exec(sftp_user, f"md5sum {quoted}")
    assert (status, err) == (0, b"")
    assert out == f"{hashlib.md5(data).hexdigest()}  /{bucket}/dir/it's [x] $HOME;.bin\n".encode()
    status, out, _ = ssh_exec(sftp_user, f"sha1sum '{bucket}/dir/it'\\''s [x] $HOME;.bin'")
    assert status == 0 and out.split()[0].decode() == hashlib.sha1(data).hexdigest()


def test_md5sum_of_a_multipart_object_is_its_content_md5(node: NodeProcess,
                                                         sftp_user: SftpUser) -> None:
    u = sftp_user.user
    s3 = boto3.client("s3", endpoint_url=node.s3_url, aws_access_key_id=u.access_key,
                      aws_secret_access_key=u.secret_key, region_name=node.region,
                      config=Config(s3={"addressing_style": "path"}))
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=u.bucket, Key="mp.bin")
    etags = [s3.upload_part(Bucket=u.bucket, Key="mp.bin", UploadId=up["UploadId"],
                            PartNumber=i + 1, Body=p)["ETag"] for i, p in enumerate(parts)]
    done = s3.complete_multipart_upload(
        Bucket=u.bucket, Key="mp.bin", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1}
                                   for i, e in enumerate(etags)]})
    assert done["ETag"].endswith('-2"')
    status, out, _ = ssh_exec(sftp_user, f"md5sum /{u.bucket}/mp.bin")
    assert status == 0
    assert out.split()[0].decode() == hashlib.md5(b"".join(parts)).hexdigest()


def test_missing_files_directories_and_other_accounts(node: NodeProcess,
                                                      sftp_user: SftpUser) -> None:
    bucket = sftp_user.user.bucket
    _put(sftp_user, "folder/one.txt", b"one")
    status, out, err = ssh_exec(
        sftp_user,
        f"md5sum /{bucket}/nope.txt /{bucket}/folder/one.txt /{bucket}/folder /{bucket} /")
    assert status == 1
    assert out == f"{hashlib.md5(b'one').hexdigest()}  /{bucket}/folder/one.txt\n".encode()
    assert err.decode().splitlines() == [
        f"md5sum: /{bucket}/nope.txt: No such file or directory",
        f"md5sum: /{bucket}/folder: Is a directory",
        f"md5sum: /{bucket}: Is a directory",
        "md5sum: /: Is a directory",
    ]
    other = signup(node)
    r = httpx.post(f"{node.web_url}/api/v1/files?key=secret.txt", headers=other.api_headers,
                   content=b"private")
    assert r.status_code == 201
    for path in (f"/{other.bucket}/secret.txt", f"/../../{other.bucket}/secret.txt",
                 f"{bucket}/../{other.bucket}/secret.txt"):
        status, out, err = ssh_exec(sftp_user, f"sha1sum {path}")
        assert (status, out) == (1, b"")
        assert err.endswith(b": No such file or directory\n")


@pytest.mark.parametrize(("command", "status", "message"), [
    ("ls /", 127, b"ls: command not supported"),
    ("rm -rf /", 127, b"rm: command not supported"),
    ("md5sum 'unbalanced", 2, b"cannot parse the command"),
    ("md5sum --tag x", 1, b"md5sum: option --tag is not supported"),
    ("", 127, b"(empty command): command not supported"),
])
def test_other_commands_are_refused(sftp_user: SftpUser, command: str, status: int,
                                    message: bytes) -> None:
    got, out, err = ssh_exec(sftp_user, command)
    assert (got, out) == (status, b"")
    assert err.startswith(message) and err.endswith(b"\n")


def test_no_shell_runs_operators_are_literal(sftp_user: SftpUser) -> None:
    """``;`` and ``|`` are characters of a file name: nothing else is run."""
    status, out, err = ssh_exec(sftp_user, "md5sum x; echo pwned | cat")
    assert status == 1 and b"pwned" not in out
    assert err.decode().splitlines()[0] == "md5sum: x;: No such file or directory"


def test_shell_requests_are_refused(sftp_user: SftpUser) -> None:
    c = paramiko_client(sftp_user)
    chan = c.get_channel().get_transport().open_session()
    with pytest.raises(Exception):  # noqa: B017 - paramiko raises SSHException
        chan.invoke_shell()


def test_digest_line_escapes_like_coreutils() -> None:
    assert commands.digest_line("ab", "a b") == b"ab  a b\n"
    assert commands.digest_line("ab", "a\\b\nc") == b"\\ab  a\\\\b\\nc\n"
    assert commands.echo_output(["${ShellId}%ComSpec%", "$HOME", "x"]) == b"%ComSpec%  x\n"
    assert commands.parse("md5sum '/b/it'\\''s'") == ["md5sum", "/b/it's"]
