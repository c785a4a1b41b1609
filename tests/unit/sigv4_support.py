"""Shared values of the SigV4 tests: AWS's published keys, times, hosts and presigned query."""

from __future__ import annotations

import datetime as dt

# The generic aws-sig-v4-test-suite's secret and request time.
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)

# The S3 documentation examples' credentials, time, host and presigned GET.
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_AKID = "AKIAIOSFODNN7EXAMPLE"
S3_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
HOST = ("Host", "examplebucket.s3.amazonaws.com")
AMZ_DATE = ("x-amz-date", "20130524T000000Z")

PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)
