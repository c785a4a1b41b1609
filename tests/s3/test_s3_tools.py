"""Third-party S3 clients against the endpoint: aws-cli, s3cmd, rclone and the
AWS SDK for JavaScript v3.  A tool that is not installed is skipped with the
command that installs it (never silently)."""

from __future__ import annotations

import filecmp
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

MiB = 1024 * 1024
JS_DIR = Path(__file__).parent / "js"


def missing(reason: str) -> None:
    """Skip on a developer machine without the tool; under CI, where
    scripts/test-services.sh installs every client, a missing one is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} is not installed (install it with: {install})")
    return path


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    # A machine-wide AWS_CA_BUNDLE (for TLS to the real AWS) must not leak in:
    # rclone refuses to start with one on a plain-http endpoint.
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**base, **(env or {})}, cwd=cwd)
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def make_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"hello a\n")
    (tree / "sub" / "b with space.bin").write_bytes(os.urandom(70_000))
    (tree / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(12 * MiB))
    (tree / "sub" / "ümlaut+plus.txt").write_bytes(b"unicode\n")
    return tree


def same_tree(a: Path, b: Path) -> None:
    names_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    names_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert names_a == names_b
    for rel in names_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_aws_cli(node, tmp_path):
    aws = need("aws", "pip install awscli (it pins its own botocore: use a separate venv)")
    env = {"AWS_ACCESS_KEY_ID": node.access_key, "AWS_SECRET_ACCESS_KEY": node.secret_key,
           "AWS_DEFAULT_REGION": node.region, "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    base = [aws, "--endpoint-url", node.s3_url]
    bucket = f"cli-{secrets.token_hex(5)}"
    tree = make_tree(tmp_path)
    run([*base, "s3", "mb", f"s3://{bucket}"], env)
    run([*base, "s3", "cp", "--recursive", str(tree), f"s3://{bucket}/t/"], env)
    listing = run([*base, "s3", "ls", "--recursive", f"s3://{bucket}/"], env)
    assert "t/sub/deeper/big.bin" in listing and "t/sub/b with space.bin" in listing
    back = tmp_path / "back"
    run([*base, "s3", "sync", f"s3://{bucket}/t/", str(back)], env)
    same_tree(tree, back)
    head = run([*base, "s3api", "head-object", "--bucket", bucket, "--key",
                "t/sub/deeper/big.bin"], env)
    assert '"ContentLength": 12582912' in head and '-2\\""' in head  # multipart ETag
    run([*base, "s3", "rb", "--force", f"s3://{bucket}"], env)
    assert bucket not in run([*base, "s3", "ls"], env)


def test_s3cmd(node, tmp_path):
    s3cmd = need("s3cmd", "apt-get install s3cmd")
    hostport = urlsplit(node.s3_url).netloc
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {node.access_key}\nsecret_key = {node.secret_key}\n"
        f"host_base = {hostport}\nhost_bucket = {hostport}\n"
        f"bucket_location = {node.region}\nuse_https = False\nsignature_v2 = False\n"
    )
    base = [s3cmd, "-c", str(cfg), "--no-progress"]
    bucket = f"s3cmd-{secrets.token_hex(5)}"
    tree = make_tree(tmp_path)
    run([*base, "mb", f"s3://{bucket}"])
    run([*base, "put", "--recursive", "--multipart-chunk-size-mb=5", f"{tree}/",
         f"s3://{bucket}/t/"])
    listing = run([*base, "ls", "--recursive", f"s3://{bucket}"])
    assert f"s3://{bucket}/t/sub/deeper/big.bin" in listing
    back = tmp_path / "back"
    back.mkdir()
    run([*base, "get", "--recursive", f"s3://{bucket}/t/", f"{back}/"])
    same_tree(tree, back)
    info = run([*base, "info", f"s3://{bucket}/t/a.txt"])
    assert "File size: 8" in info
    run([*base, "del", "--recursive", "--force", f"s3://{bucket}/t/"])
    run([*base, "rb", f"s3://{bucket}"])


def test_rclone(node, tmp_path):
    rclone = need("rclone", "apt-get install rclone")
    env = {
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_CS_TYPE": "s3", "RCLONE_CONFIG_CS_PROVIDER": "Other",
        "RCLONE_CONFIG_CS_ACCESS_KEY_ID": node.access_key,
        "RCLONE_CONFIG_CS_SECRET_ACCESS_KEY": node.secret_key,
        "RCLONE_CONFIG_CS_ENDPOINT": node.s3_url, "RCLONE_CONFIG_CS_REGION": node.region,
        "RCLONE_CONFIG_CS_FORCE_PATH_STYLE": "true",
    }
    bucket = f"rclone-{secrets.token_hex(5)}"
    tree = make_tree(tmp_path)
    opts = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--transfers", "2"]
    run([rclone, "mkdir", f"cs:{bucket}"], env)
    run([rclone, "copy", *opts, str(tree), f"cs:{bucket}/t"], env)
    run([rclone, "check", str(tree), f"cs:{bucket}/t"], env)
    back = tmp_path / "back"
    run([rclone, "copy", f"cs:{bucket}/t", str(back)], env)
    same_tree(tree, back)
    run([rclone, "purge", f"cs:{bucket}"], env)
    assert bucket not in run([rclone, "lsd", "cs:"], env)


def test_aws_sdk_js_v3(node):
    node_bin = need("node", "apt-get install nodejs npm")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-s3").is_dir():
        missing(f"AWS SDK for JS is not installed (run: npm install --prefix {JS_DIR})")
    bucket = f"js-{secrets.token_hex(5)}"
    out = run([node_bin, str(JS_DIR / "s3_smoke.mjs"), node.s3_url, node.region,
               node.access_key, node.secret_key, bucket])
    assert "js sdk ok" in out
