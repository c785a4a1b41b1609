"""Shared parts of the S3 XML tests: sample values and a boto3 client fed our documents."""

from __future__ import annotations

import datetime as dt

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from protocols.s3.xml import Owner
from tests.unit.boto_support import CannedBody

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
T1 = dt.datetime(2006, 2, 27, 12, 34, 56, 789000, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
OWNER = Owner("owner-id", "owner")
WEIRD_KEYS = [
    "plain.txt",
    "dir/a b+c.txt",
    "sp\u00e9cial/\u2603&<>'\".bin",
    "pct%20literal",
    "t\tab",
]


# --- a boto3 client answering with our documents --------------------------------------


def boto_client(body: bytes, status: int = 200, headers: dict[str, str] | None = None):
    """A boto3 S3 client whose every call gets ``body`` back; returns (client, sent)."""
    sent: list[tuple[str, str, bytes]] = []

    def before_send(request, **_kwargs):
        data = request.body
        data = data.read() if hasattr(data, "read") else (data or b"")
        sent.append((request.method, request.url, bytes(data)))
        return AWSResponse(request.url, status, headers or {}, CannedBody(body))

    client = boto3.client(
        "s3",
        endpoint_url="http://s3.local:9000",
        region_name="us-east-1",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}),
    )
    client.meta.events.register("before-send", before_send)
    return client, sent
