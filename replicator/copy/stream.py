"""Moving rows as raw COPY bytes: master `COPY (SELECT …) TO STDOUT` straight into replica
`COPY … FROM STDIN`, chunk by chunk. Python never parses a row and never holds a batch.

A table that is empty on the replica is read in heap order, cut into batches by TID ranges
(`ctid >= '(p,0)' AND ctid < '(q,0)'`, a TID Range Scan from PostgreSQL 14): each batch is its own
COPY of whole pages, so batches need no ORDER BY, no key boundaries and no look at the bytes. Older
masters get one sequential COPY whose row messages are cut into batches (:class:`BinaryFrames`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from queue import Queue

import psycopg
from psycopg import errors, pq, sql
from psycopg.abc import PQGen
from psycopg.copy import QueuedLibpqWriter
from psycopg.generators import fetch_many
from psycopg.waiting import Wait

from .plan import CopyError

TID_RANGE_MIN_VERSION = 140000


#: Bytes of rows gathered into one block before it is written to the replica (or spooled). The master
#: sends one message per row; handing each to the writer thread on its own costs a queue round per
#: row, which dominates for narrow rows.
WRITE_BYTES = 1 << 17


#: Blocks the replica's writer thread may hold before the master's reader waits for it: a replica
#: slower than the master then slows the stream instead of growing memory. (psycopg's own bound is
#: 1,024 writes, 128 MiB of our blocks, per stream; with several streams under --jobs that adds up.)
WRITER_BLOCKS = 64


class BoundedWriter(QueuedLibpqWriter):
    """psycopg's writer thread, with at most :data:`WRITER_BLOCKS` blocks queued."""

    def __init__(self, cursor: psycopg.Cursor):
        super().__init__(cursor)
        if isinstance(getattr(self, "_queue", None), Queue):  # psycopg's queue, made smaller
            self._queue = Queue(maxsize=WRITER_BLOCKS)


def received(pgconn: pq.abc.PGconn, encoding: str, block: bytearray) -> PQGen[bool]:
    """Append to ``block`` the rows a running `COPY … TO STDOUT` has sent, as raw bytes: every CopyData
    message libpq holds, until the block reaches :data:`WRITE_BYTES` (waiting only while nothing has come
    yet); returns True once the COPY has ended, its result read and checked (an error mid-COPY is raised
    here). Run it with `Connection.wait`.

    psycopg's `Copy.read` returns one message per call, and the server sends one message per row: a few
    microseconds of Python per row were most of a copy's client CPU, and under --jobs every worker
    queued for the interpreter lock to spend them."""
    got = polled = False
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            block += data
            got, polled = True, False
            if len(block) >= WRITE_BYTES:
                return False
        elif nbytes == 0:  # nothing more in libpq's buffer (it reads the socket 16 KiB at a time)
            if got and not polled:
                # read what the socket holds now, without the round through `Connection.wait` and
                # its poll that returning here would cost per 16 KiB
                pgconn.consume_input()
                polled = True
                continue
            if got:
                return False
            while not (yield Wait.R):
                continue
            pgconn.consume_input()
        else:  # the COPY ended (libpq has no more of it to give): its result says how
            for result in (yield from fetch_many(pgconn)):
                if result.status != pq.ExecStatus.COMMAND_OK:
                    raise errors.error_from_result(result, encoding=encoding)
            return True


def blocks(conn: psycopg.Connection) -> Iterator[bytearray]:
    """The rows of the `COPY … TO STDOUT` just started on ``conn`` (by psycopg's `cursor.copy`), raw, in
    blocks of about :data:`WRITE_BYTES` (the last one smaller); each block is new, so it may be kept."""
    block, ended = bytearray(), False
    while not ended:
        ended = conn.wait(received(conn.pgconn, conn.info.encoding, block))
        if len(block) >= WRITE_BYTES or (ended and block):
            yield block
            block = bytearray()


class Started:
    """A master `COPY … TO STDOUT` sent and begun (psycopg's `cursor.copy` entered) whose rows are not read
    yet: they wait in the socket buffers, the server pausing when those are full, until `into_replica`
    reads them. Starting the next batch's COPY while the replica still works on the last one hides the
    round trip to a distant master behind the replica's work."""

    def __init__(self, master: psycopg.Connection, out: sql.Composable, params: list):
        self.master = master
        self._cursor = master.cursor()
        self._copy = self._cursor.copy(out, params)
        try:
            self._copy.__enter__()
        except BaseException:
            self._cursor.close()
            raise
        self._open = True

    def close(self, exc: BaseException | None = None) -> None:
        """End it (once): with ``exc``, psycopg cancels the COPY and drains what it still sends."""
        if not self._open:
            return
        self._open = False
        try:
            self._copy.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        finally:
            self._cursor.close()


def into_replica(started: Started, replica: psycopg.Connection, into: sql.Composable,
                 master_done: Callable[[], None] | None = None) -> int:
    """Stream a started master COPY into one replica COPY FROM STDIN; returns the rows written. The
    replica is written by psycopg's writer thread, so reading the master overlaps writing.
    ``master_done`` is called once the master has sent its last row and the master connection is free,
    while the replica may still be taking the rows in. Whatever fails, the master COPY is ended."""
    try:
        with replica.cursor() as rc:
            with rc.copy(into, writer=BoundedWriter(rc)) as dst:
                for block in blocks(started.master):
                    dst.write(block)
                started.close()
                if master_done is not None:
                    master_done()
            return max(rc.rowcount, 0)
    except BaseException as e:
        started.close(e)  # nothing to do once it has ended
        raise


def pipe(master: psycopg.Connection, replica: psycopg.Connection, out: sql.Composable, params: list,
         into: sql.Composable) -> int:
    """Stream one master COPY TO STDOUT into one replica COPY FROM STDIN; returns the rows written."""
    return into_replica(Started(master, out, params), replica, into)


def copy_out(select: sql.Composable, fmt: sql.Composable) -> sql.Composable:
    return sql.SQL("COPY ({s}) TO STDOUT {f}").format(s=select, f=fmt)


def copy_in(target: sql.Composable, columns: list[str], fmt: sql.Composable) -> sql.Composable:
    return sql.SQL("COPY {t} ({c}) FROM STDIN {f}").format(
        t=target, c=sql.SQL(", ").join(sql.Identifier(c) for c in columns), f=fmt)


# ------------------------------------------------------------------------------------ TID ranges
@dataclass(frozen=True)
class PageRange:
    """Pages [first, stop) of one heap (``stop`` None: to the end, so rows on pages added since the
    page count was read, invisible to the snapshot anyway, cannot be missed by a stale count)."""

    relation: sql.Identifier
    first: int
    stop: int | None

    def predicate(self) -> tuple[sql.Composable, list[str]]:
        """The WHERE clause and its parameters (bound, so every batch is the same statement text)."""
        if self.stop is None:
            return sql.SQL("ctid >= %s::tid"), [f"({self.first},0)"]
        return sql.SQL("ctid >= %s::tid AND ctid < %s::tid"), [f"({self.first},0)", f"({self.stop},0)"]


DEFAULT_ROWS_PER_PAGE = 40.0


_SAMPLE_WIDTH = "SELECT avg(pg_column_size(s.*)) FROM (SELECT * FROM ONLY {} LIMIT 200) s"
PAGE_BYTES = 8192
#: The most rows an 8 KiB heap page holds (PostgreSQL's MaxHeapTuplesPerPage).
MAX_ROWS_PER_PAGE = 291


@dataclass(frozen=True)
class Heap:
    """One heap of a table (the table, or one of its leaf partitions): its size in pages when read, and
    the planner's rows per page (None: never vacuumed or analyzed). Read by the pre-flight (`sql/heaps.sql`)."""

    schema_name: str
    name: str
    pages: int
    rows_per_page: float | None


def page_ranges(master: psycopg.Connection, table_heaps: list[Heap], rows_per_batch: int,
                bytes_per_batch: int) -> list[PageRange]:
    """Batches of about ``rows_per_batch`` rows (and at most about ``bytes_per_batch``) over every heap
    of a table, each one a range of whole pages; the last range of each heap is open-ended."""
    out: list[PageRange] = []
    for heap in table_heaps:
        rel, per_page, pages = sql.Identifier(heap.schema_name, heap.name), heap.rows_per_page, heap.pages
        if not per_page and pages * MAX_ROWS_PER_PAGE <= rows_per_batch and pages * PAGE_BYTES <= bytes_per_batch:
            per_page = MAX_ROWS_PER_PAGE  # one range whatever its rows' width: no round trip to measure it
        elif not per_page and pages:
            # never vacuumed or analyzed: rows per page from the width of a few rows
            width = master.execute(sql.SQL(_SAMPLE_WIDTH).format(rel)).fetchone()[0]
            per_page = PAGE_BYTES * 0.9 / float(width) if width else DEFAULT_ROWS_PER_PAGE
        step = max(1, min(int(rows_per_batch / (per_page or DEFAULT_ROWS_PER_PAGE)), bytes_per_batch // PAGE_BYTES))
        first = 0
        while first + step < pages:
            out.append(PageRange(rel, first, first + step))
            first += step
        out.append(PageRange(rel, first, None))
    return out


# ------------------------------------------------------------------------------------ binary framing
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
TRAILER = b"\xff\xff"


class BinaryFrames:
    """Checks the framing of a binary `COPY … TO STDOUT` stream read message by message (masters
    before PostgreSQL 14, which cannot cut a table by TID range).

    PostgreSQL sends one CopyData message per row; the file header (signature, flags, header extension)
    arrives first, on its own or in front of the first row, and the trailer (int16 -1) last. `feed`
    returns the row bytes of a message (None for a bare header or the trailer); anything else raises,
    so a change of framing fails the copy instead of corrupting a batch. The first rows are walked field
    by field; after that the field count is checked on every row."""

    WALK = 64

    def __init__(self, ncols: int):
        self.ncols = ncols
        self.header: bytes | None = None
        self.ended = False
        self.seen = 0
        self.prefix = struct.pack("!h", ncols)

    def _fail(self, why: str):
        raise CopyError(f"unexpected binary COPY framing from the master ({why}); nothing of this batch was committed")

    def feed(self, chunk) -> memoryview | None:
        if self.seen >= self.WALK and chunk[:2] == self.prefix:  # the common case, kept cheap
            return chunk
        mv = memoryview(chunk)
        if self.ended:
            self._fail("data after the trailer")
        if self.header is None:
            if len(mv) < 19 or bytes(mv[:11]) != SIGNATURE:
                self._fail("no PGCOPY signature")
            (ext,) = struct.unpack_from("!i", mv, 15)
            end = 19 + ext
            if ext < 0 or len(mv) < end:
                self._fail("truncated header")
            self.header = bytes(mv[:end])
            mv = mv[end:]
            if not len(mv):
                return None
        if len(mv) == 2 and mv[0] == 0xFF and mv[1] == 0xFF:
            self.ended = True
            self.seen = 0  # anything after the trailer takes the checked path (and fails)
            return None
        if len(mv) < 2:
            self._fail("short message")
        (nf,) = struct.unpack_from("!h", mv, 0)
        if nf != self.ncols:
            self._fail(f"a row with {nf} fields, expected {self.ncols}")
        if self.seen < self.WALK:
            pos = 2
            for _ in range(nf):
                if pos + 4 > len(mv):
                    self._fail("truncated row")
                (ln,) = struct.unpack_from("!i", mv, pos)
                pos += 4 + max(ln, 0)
            if pos != len(mv):
                self._fail("a message that is not exactly one row")
        self.seen += 1
        return mv

    def close(self) -> None:
        if self.header is None or not self.ended:
            self._fail("the stream ended without a trailer")


def framed_rows(master: psycopg.Connection, out: sql.Composable, params: list, ncols: int) -> Iterator[tuple[bytes, memoryview]]:
    """(header, row bytes) for every row of one binary COPY TO STDOUT, framing checked."""
    frames = BinaryFrames(ncols)
    with master.cursor() as mc, mc.copy(out, params) as src:
        for chunk in src:
            row = frames.feed(chunk)
            if row is not None:
                yield frames.header, row  # type: ignore[misc]
        frames.close()
