"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed time each way: a distant master (a
Supabase project over the internet is 20-100 ms a round trip away) on this machine.

    with LatencyProxy("127.0.0.1", 5432, delay=0.020) as proxy:
        url = f"postgresql://...@127.0.0.1:{proxy.port}/db"

Bytes keep their order and the link keeps its bandwidth (chunks are delayed, not serialised), so a
run's added time is its round trips times twice the delay. Loopback only. The proxy runs in a process
of its own (`python latency.py HOST PORT DELAY`), as a distant link would: in the benchmark's own
process it would compete with the tool for the interpreter lock and bias every figure.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            at, data = await queue.get()
            if not data:
                break
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(1 << 16):
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((time.monotonic() + delay, b""))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def serve(host: str, port: int, delay: float) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay), return_exceptions=True)

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)  # the parent reads the port from here
    async with server:
        await server.serve_forever()


class LatencyProxy:
    """The proxy as a child process, for the length of a `with` block."""

    def __init__(self, host: str, port: int, delay: float):
        self.args = [sys.executable, __file__, host, str(port), repr(delay)]
        self.port = 0
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "LatencyProxy":
        self._proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line.strip().isdigit():
            self._proc.kill()
            raise RuntimeError("the latency proxy did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)


if __name__ == "__main__":
    try:
        asyncio.run(serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
    except KeyboardInterrupt:
        pass
