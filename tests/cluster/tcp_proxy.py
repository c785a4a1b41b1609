"""A loopback TCP forwarder that a test can cut: a node pointed at it loses
its PostgreSQL server (connections reset, then refused) without anyone
touching the shared server other tests use."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.harness import free_port


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` until :meth:`cut`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._cut:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Stop listening (new connections are refused) and close every open one."""
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, set()
        self._listener.close()
        for s in sockets:
            # shutdown() wakes the pump threads blocked in recv(); close() alone would not.
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
