"""Shared boto3/botocore test helpers: a canned response body for ``before-send`` hooks."""

from __future__ import annotations


class CannedBody:
    """Minimal urllib3-like body for a canned botocore response."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data

    def read(self, *_args, **_kwargs) -> bytes:
        data, self._data = self._data, b""
        return data
