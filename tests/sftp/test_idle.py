"""``sftp.idle_timeout_seconds``: a node closes SFTP connections that have been
idle that long, and only those."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import NodeProcess, started_node
from tests.sftp.conftest import enable_sftp, paramiko_client

IDLE_TIMEOUT = 1


@pytest.fixture(scope="module")
def idle_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    extra = f"[sftp]\nidle_timeout_seconds = {IDLE_TIMEOUT}\n"
    with started_node(tmp_path_factory.mktemp("idlenode"), extra) as n:
        yield n


def test_idle_connection_is_closed(idle_node: NodeProcess) -> None:
    su = enable_sftp(idle_node)
    sftp = paramiko_client(su)
    transport = sftp.get_channel().get_transport()
    assert sftp.listdir("/") == [su.user.bucket]
    last_request = time.monotonic()
    deadline = last_request + 15
    while transport.is_active():
        assert time.monotonic() < deadline, "the idle connection was not closed"
        time.sleep(0.05)
    assert time.monotonic() - last_request >= IDLE_TIMEOUT * 0.9
    with pytest.raises(OSError):
        sftp.listdir("/")


def test_busy_connection_stays_open(idle_node: NodeProcess, tmp_path: Path) -> None:
    """Requests every 0.2 s for three idle timeouts keep the connection."""
    su = enable_sftp(idle_node)
    sftp = paramiko_client(su)
    transport = sftp.get_channel().get_transport()
    end = time.monotonic() + 3 * IDLE_TIMEOUT
    while time.monotonic() < end:
        assert sftp.listdir("/") == [su.user.bucket]
        time.sleep(0.2)  # the client's pace, well inside the timeout
    assert transport.is_active()
    sftp.close()
