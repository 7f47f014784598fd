"""A TCP proxy on 127.0.0.1 in front of PostgreSQL, for outage tests: cut (connections reset,
new ones refused) or held (a black hole: accepted, nothing forwarded)."""

from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy.engine import make_url


def proxied(database_url: str) -> tuple[TcpProxy, str]:
    """A proxy in front of the PostgreSQL of ``database_url`` and the URL through it; skips
    the test on SQLite (a file inside the process cannot become unreachable)."""
    if database_url.startswith("sqlite"):
        pytest.skip("an embedded SQLite file cannot become unreachable; runs on PostgreSQL")
    real = make_url(database_url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
    return proxy, real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new
    ones, ``restore()`` listens again on the same port; ``hold()`` is a black hole (connections,
    open and new, stay up and accepted, and nothing is forwarded: a silent network drop) until
    ``release()`` forwards what was held."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._generation = 0  # bumped by cut(): a connection accepted just before is dropped
        self._flowing = threading.Event()
        self._flowing.set()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener, self._generation),
                         daemon=True).start()

    def cut(self) -> None:
        # shutdown() first: close() alone neither wakes the thread blocked in accept() nor
        # stops the kernel from accepting on the port while that call holds the socket.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            self._generation += 1
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def _accept(self, listener: socket.socket, generation: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if generation != self._generation:  # cut() ran while this one was connecting
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
