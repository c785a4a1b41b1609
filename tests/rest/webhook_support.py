"""A local HTTP receiver for webhook and outbound-client tests: a real
server on a free loopback port, in a thread, recording what it gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered


@dataclass
class Receiver:
    """What the server answers (``status``, ``body``, extra ``headers``) and
    what it got.  ``handler`` may replace the answer entirely."""

    port: int = 0
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    # While set and not yet released, requests wait (a receiver that hangs);
    # they are recorded once answered, with the status current then.
    hold: threading.Event | None = None
    arrived: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, pred: Callable[[list[Received]], bool], deadline: float = 30) -> \
            list[Received]:
        """Poll until ``pred(requests)`` holds (AssertionError after ``deadline`` s)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            got = self.requests()
            if pred(got):
                return got
            time.sleep(0.05)
        got = [r.headers.get("X-CloudStorage-Event", r.path) for r in self.requests()]
        raise AssertionError(f"receiver condition not met; got {len(got)} requests: {got}")


def _handler(rec: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with rec.lock:
                rec.arrived += 1
            if rec.hold is not None:
                rec.hold.wait(60)
            status = rec.status
            with rec.lock:
                rec.received.append(Received(self.command, self.path, dict(self.headers), body,
                                             status))
            try:
                self.send_response(status)
                for name, value in rec.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(rec.body)))
                self.end_headers()
                self.wfile.write(rec.body)
            except OSError:  # the sender went away (a killed node)
                self.close_connection = True

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def receiver(port: int = 0, **kwargs: object) -> Iterator[Receiver]:
    """A running receiver on 127.0.0.1 (``port`` 0: any free port)."""
    rec = Receiver(**kwargs)  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(rec))
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        if rec.hold is not None:
            rec.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
