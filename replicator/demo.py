"""`replicator demo`: the whole pipeline on two throwaway servers, with nothing installed.

Two PostgreSQL servers are started from the binaries of the `pgserver` wheel (the machine's own
`initdb`/`pg_ctl` if those cannot start), the sample master and drifted replica shipped in the
package (``replicator.examples``) are loaded, and the commands run against them exactly as a user
would run them: analyze → migrate → copy --all → verify --deep, then sync (which finds nothing left
to do), with the sample ``replicator.toml`` (written to the demo's out-dir) as the config. The master
is reached through a read-only role created the way the README recommends.

Every demo keeps a small record under the per-user state directory
(``$XDG_STATE_HOME/replicator/demo/<id>/``, default ``~/.local/state/...``, mode 0700: it holds
passwords). Without ``--keep`` the servers are stopped and the record removed at the end (also on
Ctrl-C); with ``--keep`` they stay up until ``replicator demo --stop``, which stops every recorded
demo. Separate ids, directories and ports mean two demos never collide.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import click
import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from . import ephemeral
from .connect import open_master, open_replica
from .errors import ReplicatorError
from .examples import example_path, load_example

RECORD_FILE = "demo.json"
PGPASS_FILE = "pgpass"
MASTER_DB = "master"
REPLICA_DB = "replica"
READONLY_ROLE = "replicator_ro"
MASK_KEY_ENV = "REPLICATOR_MASK_KEY"

# The tables whose figures the migration plan promises (missing on the replica before the demo).
HEADLINE_TABLES = ("conversations", "whatsapp_messages")


# --------------------------------------------------------------------------------------------------
# where demos keep their state


def state_root() -> Path:
    """Per-user directory holding one sub-directory per running demo."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "replicator" / "demo"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@dataclass
class DemoRecord:
    """What a demo leaves behind so that `--stop` (or the demo itself) can clean it up."""

    id: str
    record_dir: Path
    data_parent: Path
    clusters: list[Path] = field(default_factory=list)
    kept: bool = False
    pid: int = field(default_factory=os.getpid)
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    master_url: str | None = None  # without password (the password is in the pgpass file)
    replica_url: str | None = None
    mask_key: str = field(default_factory=lambda: "demo-" + secrets.token_hex(8))

    @property
    def pgpass(self) -> Path:
        return self.record_dir / PGPASS_FILE

    def save(self) -> None:
        data = {"id": self.id, "data_parent": str(self.data_parent), "clusters": [str(c) for c in self.clusters],
                "kept": self.kept, "pid": self.pid, "started": self.started, "master_url": self.master_url,
                "replica_url": self.replica_url, "mask_key": self.mask_key}
        path = self.record_dir / RECORD_FILE
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, record_dir: Path) -> "DemoRecord":
        data = json.loads((record_dir / RECORD_FILE).read_text())
        return cls(id=data["id"], record_dir=record_dir, data_parent=Path(data["data_parent"]),
                   clusters=[Path(c) for c in data["clusters"]], kept=data.get("kept", False),
                   pid=data.get("pid", 0), started=data.get("started", ""), master_url=data.get("master_url"),
                   replica_url=data.get("replica_url"), mask_key=data.get("mask_key", ""))

    @classmethod
    def create(cls) -> "DemoRecord":
        demo_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        record_dir = _private_dir(state_root() / demo_id)
        # The data directories live in a short temporary path: each server's Unix socket is created
        # in its directory, and socket paths are limited to 107 bytes. As root the servers run as an
        # unprivileged user, who must be able to traverse the parent (each data directory itself is
        # 0700 and owned by the server user).
        data_parent = Path(tempfile.mkdtemp(prefix=f"replicator-demo-{demo_id}-"))
        if os.geteuid() == 0:
            data_parent.chmod(0o711)
        rec = cls(id=demo_id, record_dir=record_dir, data_parent=data_parent)
        rec.save()
        return rec

    def destroy(self) -> None:
        """Stop this demo's servers and remove its data directories and record."""
        for basedir in self.clusters:
            if (basedir / ephemeral.STATE_FILE).exists():
                try:
                    ephemeral.Cluster.load(basedir).stop(remove=True)
                except Exception:  # a half-started cluster: remove what is there
                    shutil.rmtree(basedir, ignore_errors=True)
            else:
                shutil.rmtree(basedir, ignore_errors=True)
        if self.data_parent != self.record_dir:
            shutil.rmtree(self.data_parent, ignore_errors=True)
        shutil.rmtree(self.record_dir, ignore_errors=True)


def recorded_demos() -> list[DemoRecord]:
    root = state_root()
    if not root.is_dir():
        return []
    found = []
    for d in sorted(root.iterdir()):
        if (d / RECORD_FILE).is_file():
            try:
                found.append(DemoRecord.load(d))
            except (ValueError, KeyError, OSError):
                continue
    return found


def stop_all(console: Console | None = None) -> list[str]:
    """Stop every recorded demo (kept ones, and any left behind by a killed run); returns their ids."""
    console = console or Console()
    stopped = []
    for rec in recorded_demos():
        if not rec.kept and rec.pid != os.getpid() and _alive(rec.pid):
            continue  # a demo still running in the foreground cleans up after itself
        rec.destroy()
        stopped.append(rec.id)
        console.print(f"stopped demo {rec.id} and removed its data")
    if not stopped:
        console.print("no demo servers to stop")
    return stopped


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------------
# servers and sample data


def candidate_bindirs() -> list[Path]:
    """The wheel's binaries first (PostgreSQL 16), then the machine's, if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        embedded = ephemeral.embedded_bindir()
    found: list[Path] = []
    for b in (embedded, ephemeral.system_bindir()):
        if b is not None and b not in found:
            found.append(b)
    return found


def _start(rec: DemoRecord, name: str, bindirs: list[Path]) -> ephemeral.Cluster:
    basedir = rec.data_parent / name
    rec.clusters.append(basedir)
    rec.save()
    errors = []
    for bindir in bindirs:
        shutil.rmtree(basedir, ignore_errors=True)
        try:
            return ephemeral.start_cluster(bindir, basedir=basedir)
        except (ReplicatorError, OSError) as e:
            errors.append(f"{bindir}: {e}")
    if not bindirs:
        raise ReplicatorError("no PostgreSQL binaries: pip install pgserver (or install PostgreSQL)")
    raise ReplicatorError("could not start a PostgreSQL server: " + "; ".join(errors))


def _create_db(cluster: ephemeral.Cluster, name: str) -> str:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return cluster.url(name)


def create_readonly_role(admin_url: str, dbname: str, password: str) -> None:
    """The read-only role the README recommends for a real master."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} BYPASSRLS").format(
            sql.Identifier(READONLY_ROLE), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(READONLY_ROLE)))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
            sql.Identifier(READONLY_ROLE)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(dbname), sql.Identifier(READONLY_ROLE)))


@dataclass
class DemoServers:
    record: DemoRecord
    master: ephemeral.Cluster
    replica: ephemeral.Cluster
    master_url: str  # read-only role, with password (never printed)
    replica_url: str
    master_admin_url: str


def _url(cluster: ephemeral.Cluster, user: str, password: str | None, dbname: str) -> str:
    auth = f"{user}:{password}" if password else user
    return f"postgresql://{auth}@127.0.0.1:{cluster.port}/{dbname}"


def start_servers(rec: DemoRecord, console: Console) -> DemoServers:
    """Start master and replica, load the samples, create the master's read-only role."""
    bindirs = candidate_bindirs()
    t0 = time.monotonic()
    master = _start(rec, "master", bindirs)
    # The replica starts while the master's sample loads; the binaries that worked go first.
    replica_box: dict = {}
    working = [master.bindir] + [b for b in bindirs if b != master.bindir]

    def start_replica() -> None:
        try:
            replica_box["cluster"] = _start(rec, "replica", working)
        except BaseException as e:  # reported in the main thread
            replica_box["error"] = e

    th = threading.Thread(target=start_replica, daemon=True)
    th.start()
    try:
        master_admin = _create_db(master, MASTER_DB)
        load_example(master_admin, "master")
        ro_password = secrets.token_urlsafe(12)
        create_readonly_role(master.url(), MASTER_DB, ro_password)
    finally:
        th.join()  # so that cleanup after an error or Ctrl-C also finds the replica
    if "error" in replica_box:
        raise replica_box["error"]
    replica: ephemeral.Cluster = replica_box["cluster"]
    replica_admin = _create_db(replica, REPLICA_DB)
    load_example(replica_admin, "replica")

    rec.master_url = _url(master, READONLY_ROLE, None, MASTER_DB)
    rec.replica_url = _url(replica, replica.user, None, REPLICA_DB)
    rec.pgpass.write_text(
        f"127.0.0.1:{master.port}:*:{READONLY_ROLE}:{ro_password}\n"
        f"127.0.0.1:{replica.port}:*:{replica.user}:{replica.password}\n"
        f"127.0.0.1:{master.port}:*:{master.user}:{master.password}\n"
    )
    rec.pgpass.chmod(0o600)
    rec.save()
    version = f"PostgreSQL {master.version}"
    origin = "embedded (pgserver wheel)" if "pgserver" in str(master.bindir) else str(master.bindir)
    console.print(f"[bold]servers[/] two {version} servers from {origin}, ports {master.port} (master) and "
                  f"{replica.port} (replica); samples loaded in {time.monotonic() - t0:.1f} s")
    return DemoServers(record=rec, master=master, replica=replica,
                       master_url=_url(master, READONLY_ROLE, ro_password, MASTER_DB),
                       replica_url=replica.url(REPLICA_DB), master_admin_url=master_admin)


# --------------------------------------------------------------------------------------------------
# the four steps


@dataclass
class Step:
    name: str
    args: list[str]
    ok_codes: tuple[int, ...] = (0,)


def demo_steps() -> list[Step]:
    return [
        Step("analyze", ["analyze"]),
        Step("migrate", ["migrate"]),
        Step("copy", ["copy", "--all"]),
        # --require-readonly-role: the demo's master role must pass the access audit, not just warn.
        Step("verify", ["verify", "--deep", "--require-readonly-role"]),
        # the daily command: the four steps in one run; here the replica is already in line
        Step("sync", ["sync", "--require-readonly-role"]),
    ]


@dataclass
class StepResult:
    name: str
    code: int
    seconds: float
    command: str
    available: bool = True

    @property
    def ok(self) -> bool:
        return self.available and self.code == 0


def invoke_cli(args: list[str]) -> int:
    """Run one `replicator` command in this process; returns its exit code."""
    from .cli import main as cli_main

    try:
        rv = cli_main.main(args, prog_name="replicator", standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except click.exceptions.Abort:
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return rv if isinstance(rv, int) else 0


def run_steps(servers: DemoServers, out_dir: Path, console: Console,
              invoke: Callable[[list[str]], int] = invoke_cli) -> list[StepResult]:
    from .cli import main as cli_main

    config = str(write_config(out_dir))
    common = ["--master", servers.master_url, "--replica", servers.replica_url, "--config", config,
              "--out-dir", str(out_dir)]
    shown = f"--config {_short(config)} --out-dir {_short(str(out_dir))}"
    results: list[StepResult] = []
    steps = demo_steps()
    for i, step in enumerate(steps, 1):
        command = f"replicator {' '.join(step.args)} {shown}"
        console.rule(f"[bold]{i}/{len(steps)} {step.name}[/]", align="left")
        console.print(f"[dim]$ {command}[/]", highlight=False, soft_wrap=True)
        if step.args[0] not in cli_main.commands:
            console.print(f"[red]✗ `replicator {step.args[0]}` is not available in this installation[/]")
            results.append(StepResult(step.name, 1, 0.0, command, available=False))
            break
        t = time.monotonic()
        code = invoke(step.args + common)
        secs = time.monotonic() - t
        results.append(StepResult(step.name, 0 if code in step.ok_codes else code, secs, command))
        if code in step.ok_codes:
            console.print(f"[green]✓ {step.name}[/] ({secs:.1f} s)")
        else:
            console.print(f"[red]✗ {step.name} failed with exit code {code}[/] ({secs:.1f} s)")
            break
    return results


CONFIG_FILE = "replicator.toml"


def write_config(out_dir: Path) -> Path:
    """The sample config, written into the demo's directory (so it can be read and edited there,
    and the commands printed by ``--keep`` can use it); rewritten by every demo."""
    path = out_dir / CONFIG_FILE
    path.write_text(example_path("replicator.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("../..") else path


# --------------------------------------------------------------------------------------------------
# the figures at the end


def _tables(conn: psycopg.Connection, schemas: list[str]) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s) ORDER BY 1, 2", (schemas,)
    ).fetchall()


def _count(conn: psycopg.Connection, schema: str, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema),
                                                                   sql.Identifier(table))).fetchone()[0]


def row_figures(master_url: str, replica_url: str, schemas: list[str] | None = None) -> list[tuple[str, int, int | None]]:
    """(table, rows on master, rows on replica or None if absent) for every master table."""
    schemas = schemas or ["public"]
    out = []
    # The master is read like everywhere else: guarded, read-only, audited.
    with open_master(master_url) as m, open_replica(replica_url) as r:
        replica_tables = set(_tables(r, schemas))
        for schema, table in _tables(m, schemas):
            name = table if schema == "public" else f"{schema}.{table}"
            n_master = _count(m, schema, table)
            n_replica = _count(r, schema, table) if (schema, table) in replica_tables else None
            out.append((name, n_master, n_replica))
    return out


def promised_rows(plan_json: Path) -> dict[str, int]:
    """Rows each table should have on the replica after the copy, from analyze's data migration plan:
    the master's rows, plus the replica-only rows the table's policy keeps."""
    try:
        tables = json.loads(plan_json.read_text())["tables"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    for t in tables:
        try:
            name = t["table"].removeprefix("public.")
            ov = t.get("overlap")
            if t.get("on_replica") and ov and ov.get("error") is None:
                keeps = t.get("policy") not in ("mirror", "replace")
                out[name] = ov["master_only"] + ov["both"] + (ov["replica_only"] if keeps else 0)
            elif not t.get("on_replica"):
                out[name] = t["master_rows"]
        except (KeyError, TypeError):
            continue
    return out


def print_figures(figures: list[tuple[str, int, int | None]], console: Console,
                  promised: dict[str, int] | None = None) -> bool:
    """Prints the table and the headline lines; True when every table has the rows it should."""
    promised = promised or {}
    table = Table(title="rows after the demo", title_justify="left")
    table.add_column("table", no_wrap=True)
    table.add_column("replica", justify="right")
    table.add_column("master", justify="right")
    table.add_column("promised", justify="right")
    table.add_column("")
    complete = True
    for name, n_master, n_replica in figures:
        want = promised.get(name)
        if n_replica is None:
            note, complete = "[red]missing[/]", False
        elif want is not None and n_replica != want:
            note, complete = f"[red]expected {want:,}[/]", False
        elif n_replica == n_master:
            note = "[green]✓[/]"
        elif n_replica > n_master:
            note = f"[green]✓[/] (+{n_replica - n_master:,} replica-only)"
        else:
            note, complete = f"[red]{n_master - n_replica:,} rows short[/]", False
        table.add_row(name, "-" if n_replica is None else f"{n_replica:,}", f"{n_master:,}",
                      "" if want is None else f"{want:,}", note)
    console.print(table)
    for name, n_master, n_replica in figures:
        if name in HEADLINE_TABLES:
            shown = "missing" if n_replica is None else f"{n_replica:,}"
            console.print(f"{name}: {shown}/{n_master:,}", highlight=False)
    return complete


# --------------------------------------------------------------------------------------------------
# the whole demo


class _Terminate(KeyboardInterrupt):
    pass


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by signals
    raise _Terminate()


def run_demo(out_dir: Path, *, keep: bool = False, console: Console | None = None) -> int:
    """Runs the demo; returns the exit code (0 when every step passed and the figures are complete)."""
    console = console or Console()
    started = time.monotonic()
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / ".gitignore").exists():
        (out_dir / ".gitignore").write_text("# written by `replicator demo`\n*\n")
    rec = DemoRecord.create()
    # The sample config masks phone numbers with a keyed hash: the demo brings its own key.
    saved_key = os.environ.get(MASK_KEY_ENV)
    if not saved_key:
        os.environ[MASK_KEY_ENV] = rec.mask_key
    else:
        rec.mask_key = saved_key
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        servers = start_servers(rec, console)
        results = run_steps(servers, out_dir, console)
        console.rule("[bold]result[/]", align="left")
        figures = row_figures(servers.master_admin_url, servers.replica_url)
        complete = print_figures(figures, console, promised_rows(out_dir / "reports" / "data-migration-plan.json"))
        all_ok = len(results) == len(demo_steps()) and all(r.ok for r in results)
        verify = next((r for r in results if r.name == "verify"), None)
        if verify is not None and verify.ok:
            console.print(f"[green]verify: green[/]{_verify_summary(out_dir / 'reports')}", highlight=False)
        for r in results:
            if not r.ok:
                console.print(f"[red]step failed: {r.name}[/]")
        reports = out_dir / "reports"
        if reports.is_dir():
            console.print(f"reports: {_short(str(reports))}/")
            for p in sorted(reports.glob("*.md")):
                console.print(f"  {_short(str(p))}", highlight=False)
        code = 0 if (all_ok and complete) else 1
        if keep:
            rec.kept = True
            rec.save()
            _print_keep(rec, servers, console, out_dir)
        console.print(f"demo {'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.1f} s")
        return code
    except BaseException:
        rec.kept = False
        raise
    finally:
        if not rec.kept:
            rec.destroy()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if saved_key is None:
            os.environ.pop(MASK_KEY_ENV, None)


def _verify_summary(reports: Path) -> str:
    """`: 24 checks passed, 7 warnings, 0 failed; 47 statements sent to the master, all read-only`."""
    try:
        latest = max(reports.glob("verify-*.json"), key=lambda p: p.stat().st_mtime)
        data = json.loads(latest.read_text())
        c = data["counts"]
        text = f": {c['pass']} checks passed, {c['warn']} warnings, {c['fail']} failed"
        audit = next((x for x in data["checks"] if x.get("name") == "audit_log"), None)
        if audit and audit.get("status") == "pass" and audit.get("summary"):
            text += f"; {audit['summary']}"
        return text
    except (ValueError, OSError, KeyError, TypeError):
        return ""


def _print_keep(rec: DemoRecord, servers: DemoServers, console: Console, out_dir: Path) -> None:
    config = _short(str(out_dir / CONFIG_FILE))
    console.rule("[bold]servers kept running[/]", align="left")
    console.print(
        "The passwords are in a pgpass file, so nothing below contains one:\n"
        f"  export PGPASSFILE={rec.pgpass}\n"
        f"  export REPLICATOR_MASTER_URL={rec.master_url}\n"
        f"  export REPLICATOR_REPLICA_URL={rec.replica_url}\n"
        f"  export {MASK_KEY_ENV}={rec.mask_key}\n"
        f"  psql \"$REPLICATOR_REPLICA_URL\"\n"
        f"  replicator analyze --config {config}\n"
        f"  replicator verify --deep --config {config}\n"
        f"master (read-only role {READONLY_ROLE}): {rec.master_url}\n"
        f"replica: {rec.replica_url}\n"
        "stop them (and remove their data) with: replicator demo --stop",
        highlight=False, soft_wrap=True,
    )
