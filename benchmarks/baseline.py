"""The baseline every copy figure is a ratio to: the raw binary COPY pipe between two `psql`
processes, `psql -c "COPY t TO STDOUT (FORMAT binary)" | psql -c "COPY t FROM STDIN (FORMAT binary)"`,
no Python in the path. Where no psql is found, the same pipe in one Python process (psycopg, the
replica written by a writer thread, rows gathered into large writes), and `describe()` says so.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg.copy import QueuedLibpqWriter


def _psql(bindir: Path | None = None) -> str | None:
    if bindir is not None and (bindir / "psql").exists():
        return str(bindir / "psql")
    return shutil.which("psql")


def describe(bindir: Path | None = None) -> str:
    return "psql | psql" if _psql(bindir) else "psycopg, one process (no psql found)"


def raw_pipe(master: str, replica: str, table: str, bindir: Path | None = None) -> float:
    """Seconds to pipe ``table`` (a quoted name) from master to replica in binary COPY format; the
    replica table is expected empty."""
    psql = _psql(bindir)
    t0 = time.perf_counter()
    if psql:
        out = subprocess.Popen([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", master,
                                "-c", f"COPY {table} TO STDOUT (FORMAT binary)"], stdout=subprocess.PIPE)
        inp = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", replica,
                              "-c", f"COPY {table} FROM STDIN (FORMAT binary)"], stdin=out.stdout,
                             stdout=subprocess.DEVNULL)
        assert out.stdout is not None
        out.stdout.close()
        if out.wait() or inp.returncode:
            raise RuntimeError(f"the psql pipe failed ({out.returncode}, {inp.returncode})")
        return time.perf_counter() - t0
    with psycopg.connect(master) as m, psycopg.connect(replica) as r:
        with m.cursor() as mc, r.cursor() as rc:
            with mc.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as src:
                with rc.copy(f"COPY {table} FROM STDIN (FORMAT binary)", writer=QueuedLibpqWriter(rc)) as dst:
                    buf = bytearray()
                    for chunk in src:
                        buf += chunk
                        if len(buf) >= 1 << 17:
                            dst.write(bytes(buf))
                            buf.clear()
                    dst.write(bytes(buf))
        r.commit()
    return time.perf_counter() - t0
