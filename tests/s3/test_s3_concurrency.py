"""Concurrent writers on one node: every request answers, none with a 500.

Puts commit through the batching SQLite writer while deletes run as
read-then-write transactions on Tortoise's connection; a deferred
transaction there used to fail its lock upgrade at once ("database is
locked") whenever a put committed after its first read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.s3.conftest import S3Node, Server

THREADS = 16
ROUNDS = 20


@pytest.fixture(scope="module")
def unlimited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without per-key rate limits, so the writers really overlap."""
    server = Server(tmp_path_factory.mktemp("s3conc"), rate_limits={})
    server.start()
    yield server
    server.stop()


def test_concurrent_puts_and_deletes_all_succeed(unlimited_server: Server) -> None:
    node = S3Node(unlimited_server, *unlimited_server.new_credentials())
    s3 = node.client(max_pool_connections=THREADS * 2)
    bucket = f"b-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=bucket)
    failures: list[str] = []

    def writer(n: int) -> None:
        for i in range(ROUNDS):
            key = f"w{n}/k{i % 4}"
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 100)
                s3.delete_object(Bucket=bucket, Key=key)
                s3.put_object(Bucket=bucket, Key=key, Body=b"y" * 100)
                s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
            except ClientError as exc:
                failures.append(f"{key}: {exc.response['Error']}")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(writer, range(THREADS)))

    assert failures == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
