"""rclone's SFTP backend against a real node: Debian 12's rclone 1.60 and a
current one, configured through environment variables only."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

from tests.harness import NodeProcess
from tests.sftp.conftest import SftpUser, rclone_for


def _tree(root: Path, count: int = 51) -> Path:
    """``count`` files, most of them over pkg/sftp's 32 KiB write size."""
    root.mkdir()
    for i in range(count):
        (root / f"f{i:02d}.bin").write_bytes(os.urandom((i * 37_003) % 400_000 + i))
    return root


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not (cmp.left_only or cmp.right_only or mismatch or errors)


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
