"""A TCP forwarder that a test can cut and mend: a network outage between two live brokers,
with both keeping their state (stopping the remote broker would lose its sessions)."""

from __future__ import annotations

import selectors
import socket
import threading


class CuttableLink:
    """Listens on a loopback port and forwards every connection to `target_port`.

    While cut, open connections are closed and new ones are closed on accept."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._cut = False
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            while self._pairs:
                self._drop(next(iter(self._pairs)))

    def mend(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._stopping = True
        self._thread.join(5)
        self._server.close()

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with self._lock:
                    if sock is self._server:
                        self._accept()
                    elif sock in self._pairs:
                        self._forward(sock)

    def _accept(self) -> None:
        client, _ = self._server.accept()
        if self._cut:
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            self._pairs[a] = b
            self._selector.register(a, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
            if data:
                self._pairs[sock].sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        other = self._pairs.pop(sock)
        del self._pairs[other]
        for s in (sock, other):
            self._selector.unregister(s)
            s.close()
