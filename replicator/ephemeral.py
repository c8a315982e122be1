"""Throwaway PostgreSQL clusters for the demo, the tests and the benchmarks.

A cluster is `initdb` + `pg_ctl start` in a temporary directory, listening on loopback with password
(scram) authentication, tuned for speed over durability (fsync off): never for real data. The binaries
come from the machine (PATH, `pg_config --bindir`) or from the `pgserver` wheel, which ships a complete
PostgreSQL so nothing needs to be installed system-wide. As root, the server runs as an unprivileged
user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .errors import ReplicatorError

SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "max_wal_size": "2GB",
    "log_min_messages": "warning",
}
STATE_FILE = "cluster.json"


@dataclass
class Cluster:
    bindir: Path
    basedir: Path
    port: int
    password: str
    version: int
    run_as: str | None = None
    user: str = "postgres"
    _stopped: bool = field(default=False, repr=False)

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    def url(self, dbname: str = "postgres", *, password: bool = True) -> str:
        auth = f"{self.user}:{quote(self.password, safe='')}" if password else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def stop(self, *, remove: bool = True) -> None:
        if not self._stopped and (self.datadir / "postmaster.pid").exists():
            _run([self.bindir / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"], self.run_as,
                 check=False)
        self._stopped = True
        if remove:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def save(self) -> None:
        """Write how to reach this cluster into its directory (used by `replicator demo --keep/--stop`)."""
        state = {"bindir": str(self.bindir), "basedir": str(self.basedir), "port": self.port,
                 "password": self.password, "version": self.version, "run_as": self.run_as}
        path = self.basedir / STATE_FILE
        path.write_text(json.dumps(state))
        path.chmod(0o600)

    @classmethod
    def load(cls, basedir: Path) -> "Cluster":
        state = json.loads((basedir / STATE_FILE).read_text())
        return cls(bindir=Path(state["bindir"]), basedir=Path(state["basedir"]), port=state["port"],
                   password=state["password"], version=state["version"], run_as=state["run_as"])


def system_bindir() -> Path | None:
    """PostgreSQL server binaries on this machine, if any."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    return None


def embedded_bindir() -> Path | None:
    """Binaries shipped inside the `pgserver` wheel (PostgreSQL 16), if it is installed."""
    try:
        with warnings.catch_warnings():
            # pgserver resolves a runtime dir at import time and warns when XDG_RUNTIME_DIR is unset;
            # we only want its binaries' path.
            warnings.simplefilter("ignore")
            import pgserver  # noqa: F401
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH) if (Path(POSTGRES_BIN_PATH) / "initdb").exists() else None


def start_cluster(bindir: Path, *, basedir: Path | None = None, port: int | None = None,
                  settings: dict[str, str] | None = None) -> Cluster:
    """initdb + start a fresh cluster; returns once it accepts connections.

    `settings` are written into the cluster's postgresql.conf (for example `log_statement = all`, with
    values any shell would mangle on a command line)."""
    run_as = _unprivileged_user() if os.geteuid() == 0 else None
    if bindir and run_as:
        _make_executable_for_all(bindir)
    basedir = Path(basedir or tempfile.mkdtemp(prefix="replicator-pg-"))
    basedir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    pwfile = basedir / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        pw = pwd.getpwnam(run_as)
        os.chmod(basedir, 0o700)
        os.chown(basedir, pw.pw_uid, pw.pw_gid)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    _run([bindir / "initdb", "-D", basedir / "data", "-U", "postgres", "--auth-local=trust",
          "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync"], run_as)
    pwfile.unlink()
    version = int((basedir / "data" / "PG_VERSION").read_text().strip().split(".")[0])
    if settings:
        _append_settings(basedir / "data" / "postgresql.conf", settings)
    last_error = ""
    for _ in range(5):
        p = port or _free_port()
        opts = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        res = _run([bindir / "pg_ctl", "-D", basedir / "data", "-w", "-t", "60", "-l", basedir / "server.log",
                    "-o", f"-p {p} -k {basedir} {opts}", "start"], run_as, check=False)
        if res.returncode == 0:
            cluster = Cluster(bindir=bindir, basedir=basedir, port=p, password=password, version=version,
                              run_as=run_as)
            cluster.save()
            return cluster
        last_error = _tail(basedir / "server.log")
        if port:
            break
    raise ReplicatorError(f"could not start PostgreSQL from {bindir}: {last_error}")


def start_standby(primary: Cluster, *, basedir: Path | None = None) -> Cluster:
    """A hot standby of `primary` (pg_basebackup -R: same system identifier, streaming, read-only), on
    its own port. The primary's default pg_hba.conf already admits replication from loopback."""
    basedir = Path(basedir or tempfile.mkdtemp(prefix="replicator-standby-"))
    basedir.mkdir(parents=True, exist_ok=True)
    if primary.run_as:
        pw = pwd.getpwnam(primary.run_as)
        os.chmod(basedir, 0o700)
        os.chown(basedir, pw.pw_uid, pw.pw_gid)
    env = {**os.environ, "PGPASSWORD": primary.password}
    _run([primary.bindir / "pg_basebackup", "-D", basedir / "data", "-R", "-X", "stream", "-c", "fast", "--no-sync",
          "-h", "127.0.0.1", "-p", str(primary.port), "-U", primary.user], primary.run_as, env=env)
    last_error = ""
    for _ in range(5):
        p = _free_port()
        # The same settings as the primary: a standby refuses a lower max_connections.
        opts = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        res = _run([primary.bindir / "pg_ctl", "-D", basedir / "data", "-w", "-t", "60", "-l", basedir / "server.log",
                    "-o", f"-p {p} -k {basedir} {opts} -c hot_standby=on", "start"], primary.run_as, check=False)
        if res.returncode == 0:
            return Cluster(bindir=primary.bindir, basedir=basedir, port=p, password=primary.password,
                           version=primary.version, run_as=primary.run_as)
        last_error = _tail(basedir / "server.log")
    raise ReplicatorError(f"could not start a standby of the cluster on port {primary.port}: {last_error}")


def _append_settings(conf: Path, settings: dict[str, str]) -> None:
    quoted = (f"{k} = '{str(v).replace(chr(39), chr(39) * 2)}'" for k, v in settings.items())
    with conf.open("a", encoding="utf-8") as f:
        f.write("\n# replicator.ephemeral\n" + "\n".join(quoted) + "\n")


def _run(cmd: list, run_as: str | None, *, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, user=run_as, cwd="/", env=env)
    if check and res.returncode != 0:
        raise ReplicatorError(f"{Path(cmd[0]).name} failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    return res


def _unprivileged_user() -> str:
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True, capture_output=True)
    return "pgserver"


def _make_executable_for_all(bindir: Path) -> None:
    # The wheel's files may be readable by root only; the server user must be able to run them.
    root = bindir.parent
    for path in [root, *root.rglob("*")]:
        try:
            mode = path.stat().st_mode
            want = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
            if want != mode:
                path.chmod(want)
        except OSError:
            pass
    for parent in root.parents:
        try:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        except OSError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-n:])
    except OSError:
        return "(no server log)"


def wait_ready(url: str, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
