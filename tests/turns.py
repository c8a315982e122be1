"""A TCP proxy that counts a connection's round trips, as a distant link makes the client feel them.

It holds what the server sends for `delay` seconds before delivering it, and counts a turn each time
the client speaks after something was delivered to it: the client may have waited for that answer.
Statements the client pipelines are sent before any answer arrives and count once, however many
writes they take. The client's first words are a turn of their own; the goodbye (Terminate) is too.

    with TurnCounter(host, port) as proxy:
        ... connect to 127.0.0.1:proxy.port ...
    proxy.turns  # per connection, in the order they were opened
"""

from __future__ import annotations

import queue
import socket
import threading
import time


class TurnCounter:
    def __init__(self, host: str, port: int, delay: float = 0.02):
        self.upstream = (host, port)
        self.delay = delay
        self.turns: list[int] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "TurnCounter":
        self._start(self._accept)
        return self

    def __exit__(self, *exc) -> None:
        _close(self._listener)  # shutting it down wakes the thread blocked in accept()
        for t in list(self._threads):
            t.join(timeout=10)

    def _start(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                index = len(self.turns)
                self.turns.append(0)
            link = {"delivered": True}
            self._start(self._upstream, client, server, index, link)
            self._start(self._downstream, server, client, link)

    def _upstream(self, client: socket.socket, server: socket.socket, index: int, link: dict) -> None:
        try:
            while data := client.recv(1 << 16):
                with self._lock:
                    if link["delivered"]:
                        self.turns[index] += 1
                        link["delivered"] = False
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _downstream(self, server: socket.socket, client: socket.socket, link: dict) -> None:
        # the answer travels for `delay` (meanwhile the client may pipeline more); chunks keep their
        # order and the link its bandwidth: each is delayed, not serialised behind the others
        travelling: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self._start(self._deliver, travelling, client, link)
        try:
            while data := server.recv(1 << 16):
                travelling.put((time.monotonic() + self.delay, data))
        except OSError:
            pass
        finally:
            travelling.put((time.monotonic() + self.delay, b""))

    def _deliver(self, travelling: queue.Queue, client: socket.socket, link: dict) -> None:
        try:
            while True:
                at, data = travelling.get()
                time.sleep(max(0.0, at - time.monotonic()))
                if not data:
                    return
                with self._lock:  # before sending: the client may answer before sendall returns
                    link["delivered"] = True
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
