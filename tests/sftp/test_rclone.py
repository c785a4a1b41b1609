"""rclone's SFTP backend against a real node: Debian 12's rclone 1.60 and a
current one, configured through environment variables only."""

from __future__ import annotations

import filecmp
import hashlib
import os
from pathlib import Path

import pytest

from tests.harness import NodeProcess
from tests.sftp.conftest import Rclone, SftpUser, paramiko_client, rclone_for


def _tree(root: Path, count: int = 51) -> Path:
    """``count`` files, most of them over pkg/sftp's 32 KiB write size."""
    root.mkdir()
    for i in range(count):
        (root / f"f{i:02d}.bin").write_bytes(os.urandom((i * 37_003) % 400_000 + i))
    return root


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _same_tree(a: Path, b: Path) -> bool:
    """Same relative file names with the same bytes."""
    names = _files(a)
    if names != _files(b):
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not (mismatch or errors)


def test_debian_rclone_copies_files_over_32k(node: NodeProcess, sftp_user: SftpUser,
                                             tmp_path: Path) -> None:
    """rclone 1.60's concurrent writes end with a WRITE carrying stale bytes
    after its data: every file over 32 KiB used to fail with SSH_FX_BAD_MESSAGE."""
    rclone = rclone_for("debian", node, sftp_user, tmp_path)
    src = _tree(tmp_path / "src")
    remote = f"cs:{sftp_user.user.bucket}/t"
    rclone.run("copy", str(src), remote)
    rclone.run("copy", remote, str(tmp_path / "back"))
    assert _same_tree(src, tmp_path / "back")


def test_rclone_copy_check_sync_moveto_purge(rclone: Rclone, sftp_user: SftpUser,
                                            tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    # A name rclone must quote for its remote hash command.
    (src / "sub dir").mkdir()
    (src / "sub dir" / "it's [x] $HOME;.txt").write_bytes(b"quoted name\n")
    bucket = sftp_user.user.bucket
    remote = f"cs:{bucket}/t"

    rclone.run("copy", str(src), remote)
    check = rclone.run("check", str(src), remote)
    assert "0 differences found" in check.stderr
    # Compared by hash (md5sum over SSH exec), not only by size.
    assert "hashes could not be checked" not in check.stderr
    assert f"{len(_files(src))} matching files" in check.stderr
    for tool, algorithm in (("md5sum", "md5"), ("sha1sum", "sha1")):
        lines = rclone.run(tool, remote).stdout.splitlines()
        assert dict(line.split("  ", 1)[::-1] for line in lines) == {
            name: hashlib.new(algorithm, (src / name).read_bytes()).hexdigest()
            for name in _files(src)}
    rclone.run("copy", remote, str(tmp_path / "back"))
    assert _same_tree(src, tmp_path / "back")

    # sync: one file changed, one deleted, one added.
    (src / "f03.bin").write_bytes(os.urandom(50_000))
    (src / "f04.bin").unlink()
    (src / "new.txt").write_text("new\n")
    rclone.run("sync", str(src), remote)
    listed = rclone.run("lsf", "-R", "--files-only", remote).stdout.splitlines()
    assert sorted(listed) == _files(src)
    rclone.run("check", str(src), remote)

    # moveto: a server-side rename.
    size = (src / "f05.bin").stat().st_size
    rclone.run("moveto", f"{remote}/f05.bin", f"cs:{bucket}/moved/five.bin")
    sftp = paramiko_client(sftp_user)
    assert sftp.stat(f"/{bucket}/moved/five.bin").st_size == size
    with pytest.raises(FileNotFoundError):
        sftp.stat(f"/{bucket}/t/f05.bin")

    rclone.run("purge", remote)
    with pytest.raises(FileNotFoundError):
        sftp.stat(f"/{bucket}/t")
    assert sftp.listdir(f"/{bucket}") == ["moved"]
