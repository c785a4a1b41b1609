"""v1-pro URL imports against a real node and a local HTTP source: a file is
streamed into storage, failures and cancels end the task, and a task
survives kill -9 of the node running it (claimed again once its lease runs
out, never left running)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.harness import NodeProcess, started_node
from tests.rest.test_v1pro_support import auth, pro_user

PAYLOAD = bytes(range(256)) * 1200  # 300 KiB
EXTRA = """
[accounts]
rest_max_upload = "8MiB"
[outbound]
allowed_networks = ["127.0.0.1/32"]
[v1pro]
requests_per_minute = 600
import_lease_seconds = 2
import_poll_seconds = 0.2
"""


class Source:
    """A local HTTP server: ``/file.bin``, ``/missing``, and ``/slow/<name>``
    whose first request stalls halfway until :meth:`release` (later ones are
    served at once)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.requests: dict[str, int] = {}
        source = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                seen = source.requests[self.path] = source.requests.get(self.path, 0) + 1
                if self.path == "/missing":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                half = len(PAYLOAD) // 2
                self.wfile.write(PAYLOAD[:half])
                self.wfile.flush()
                if self.path.startswith("/slow/") and seen == 1:
                    source.gate.wait(60)
                with contextlib.suppress(OSError):  # the importer may have gone
                    self.wfile.write(PAYLOAD[half:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def import_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node that may reach 127.0.0.1 (only), with a short import lease."""
    with started_node(tmp_path_factory.mktemp("importnode"), EXTRA) as n:
        yield n


@pytest.fixture
def source() -> Iterator[Source]:
    s = Source()
    yield s
    s.close()


def status(node: NodeProcess, key: str, task_id: str) -> dict:
    r = httpx.get(f"{node.web_url}/api/v1/import/status", params={"task_id": task_id},
                  headers=auth(key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["task"]


def wait_for(node: NodeProcess, key: str, task_id: str, done, deadline: float = 60) -> dict:
    """Poll the task until ``done(task)`` (or fail at the deadline)."""
    end = time.monotonic() + deadline
    while True:
        task = status(node, key, task_id)
        if done(task):
            return task
        assert time.monotonic() < end, task
        time.sleep(0.2)


def wait_idle(node: NodeProcess, deadline: float = 30) -> None:
    """Poll the admin API until the node's import worker runs no task."""
    token = node.settings.console_token_file().read_text().strip()
    end = time.monotonic() + deadline
    while True:
        workers = httpx.get(f"{node.web_url}/admin/v1/workers", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()["workers"]
        [imports] = [w for w in workers if w["name"] == "imports"]
        if imports["progress"].get("active") == 0:
            return
        assert time.monotonic() < end, imports
        time.sleep(0.1)


def start(node: NodeProcess, key: str, **body: str) -> str:
    r = httpx.post(f"{node.web_url}/api/v1/import", json=body, headers=auth(key), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok" and r.json()["type"] == "file"
    return r.json()["task_id"]


def test_file_import_streams_into_storage(import_node: NodeProcess, source: Source) -> None:
    user, key = pro_user(import_node)
    task_id = start(import_node, key, url=source.url("/file.bin"), path="/Imports/")
    assert task_id.startswith("file_")
    task = wait_for(import_node, key, task_id, lambda t: t["state"] != "running")
    assert task["state"] == "completed" and task["progress"] == "100%", task
    assert httpx.get(task["link"]).content == PAYLOAD
    listed = httpx.get(f"{import_node.web_url}/api/v1/files", params={"path": "/Imports/"},
                       headers=auth(key)).json()["files"]
    assert [(f["name"], f["size"]) for f in listed] == [("file.bin", len(PAYLOAD))]
    user.client.close()


def test_failed_and_cancelled_imports(import_node: NodeProcess, source: Source) -> None:
    user, key = pro_user(import_node)
    failed = start(import_node, key, url=source.url("/missing"), filename="m.bin")
    task = wait_for(import_node, key, failed, lambda t: t["state"] != "running")
    assert task["state"] == "failed" and "404" in task["error"]

    slow = start(import_node, key, url=source.url("/slow/cancel"), filename="c.bin")
    wait_for(import_node, key, slow, lambda t: t["progress"] not in ("0%", "0 bytes"))
    r = httpx.post(f"{import_node.web_url}/api/v1/import/cancel", json={"task_id": slow},
                   headers=auth(key))
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert status(import_node, key, slow)["state"] == "cancelled"
    source.release()
    # Nothing is stored for a cancelled import, even once the source finishes.
    wait_idle(import_node)
    files = httpx.get(f"{import_node.web_url}/api/v1/files", headers=auth(key)).json()["files"]
    assert "c.bin" not in [f["name"] for f in files]
    user.client.close()


def test_import_survives_kill_9(import_node: NodeProcess, source: Source) -> None:
    user, key = pro_user(import_node)
    task_id = start(import_node, key, url=source.url("/slow/kill"), filename="k.bin")
    wait_for(import_node, key, task_id, lambda t: t["progress"] not in ("0%", "0 bytes"))
    import_node.kill()  # kill -9 while the download is halfway
    import_node.start()
    # Claimed again once the dead node's lease ran out; the source now answers in full.
    task = wait_for(import_node, key, task_id, lambda t: t["state"] != "running")
    assert task["state"] == "completed", task
    assert httpx.get(task["link"]).content == PAYLOAD
    assert source.requests["/slow/kill"] == 2
    user.client.close()
