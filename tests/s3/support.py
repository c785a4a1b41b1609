"""Small helpers the S3 client tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    """The S3 error code a boto3 call failed with."""
    return exc.value.response["Error"]["Code"]


def status_of(exc: pytest.ExceptionInfo[ClientError]) -> int:
    """The HTTP status a boto3 call failed with."""
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def replace_body(body: bytes) -> Callable[..., None]:
    """A botocore ``before-sign`` hook sending ``body`` instead of the SDK's own
    (register it on a client built with ``request_checksum_calculation="when_required"``)."""

    def hook(request: Any, **_: Any) -> None:
        request.data = body
        # The SDK's body checksums describe the body it built, not this one.
        for name in [n for n in request.headers
                     if n.lower() == "content-md5" or n.lower().startswith("x-amz-checksum")
                     or n.lower() == "x-amz-sdk-checksum-algorithm"]:
            del request.headers[name]

    return hook
