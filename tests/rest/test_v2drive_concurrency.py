"""The "Concurrent" column of seed 004's rate-limit table, against a live
node configured with a small limit: downloads held open take the account's
slots, one more request answers 429 in the dialect's format, and a slot
comes back when its download ends."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import NodeProcess, started_node
from tests.rest.test_v2drive_support import auth, drive_user, error_of, s3_client

LIMIT = 2
# Larger than what loopback socket buffers take in: a download not read by
# its client stays in flight on the node.
BIG = 48 * 1024 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node allowing Pro accounts two requests in flight."""
    extra = f"[accounts]\nlogin_attempts_per_minute = 200\n[v2drive]\nconcurrent_pro = {LIMIT}\n"
    with started_node(tmp_path_factory.mktemp("v2driveconc"), extra) as n:
        yield n


def _until_admitted(url: str, key: str, deadline: float = 30) -> httpx.Response:
    """Poll ``url`` until it is no longer refused for concurrency."""
    end = time.monotonic() + deadline
    while True:
        r = httpx.get(url, headers=auth(key))
        if r.status_code != 429 or time.monotonic() > end:
            return r
        time.sleep(0.05)


def _both_admitted(url: str, key: str, deadline: float = 30) -> bool:
    """Whether two downloads held open at once are both admitted (polled:
    the node notices a client that went away when it next writes)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with (httpx.Client(timeout=60) as c1, httpx.Client(timeout=60) as c2,
              c1.stream("GET", url, headers=auth(key)) as a,
              c2.stream("GET", url, headers=auth(key)) as b):
            if (a.status_code, b.status_code) == (200, 200):
                return True
        time.sleep(0.05)
    return False


def test_concurrent_requests_are_limited_per_account(node: NodeProcess) -> None:
    user, key = drive_user(node)  # Pro
    other, other_key = drive_user(node)
    base = f"{node.web_url}/v2"
    s3_client(node, user).put_object(Bucket=user.bucket, Key="big.bin", Body=os.urandom(BIG))
    files = httpx.get(f"{base}/files", headers=auth(key)).json()["data"]
    [big] = [f for f in files if f["name"] == "big.bin"]
    download = f"{base}/files/{big['id']}/download"
    me = f"{base}/users/me"

    with (httpx.Client(timeout=60) as c1, httpx.Client(timeout=60) as c2,
          c1.stream("GET", download, headers=auth(key)) as held1,
          c2.stream("GET", download, headers=auth(key)) as held2):
        assert (held1.status_code, held2.status_code) == (200, 200)
        refused = httpx.get(me, headers=auth(key))
        assert error_of(refused) == (429, "rate_limit_exceeded")
        assert refused.headers["Retry-After"] == "1"
        assert all(h in refused.headers for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining",
                                                  "X-RateLimit-Reset"))
        # The limit is the account's: another account is not held back.
        assert httpx.get(me, headers=auth(other_key)).status_code == 200
        # A download read to its end gives its slot back; the other still holds one.
        assert sum(len(b) for b in held1.iter_bytes()) == BIG
        assert _until_admitted(me, key).status_code == 200
        with httpx.Client(timeout=60) as c3, \
                c3.stream("GET", download, headers=auth(key)) as held3:
            assert held3.status_code == 200
            assert error_of(httpx.get(me, headers=auth(key))) == (429, "rate_limit_exceeded")
    # Clients that went away mid-download gave their slots back.
    assert _both_admitted(download, key)
    user.client.close()
    other.client.close()
