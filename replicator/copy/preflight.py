"""The pre-flight pass: every table of a run checked before anything is written, every problem
reported at once (one line, numbered), so a run never stops halfway on something it could have seen.

Checked per table: it exists on both sides; columns, types, masks and cursor; the key, and on a
non-empty replica table a unique key matching it (drift can remove one, and without it a merge could
double rows); the policy (a non-empty table needs one); the replica role's privileges for what the
policy writes; triggers and rules it could not switch off; the master role's SELECT and row-level
security (which would hide rows from the copy, silently).
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..collation import DEFAULT_COLLATION_SQL, default_ordering, ordering, orderings_differ
from ..config import Config, Policy
from ..connect import batch
from ..introspect import Schema, Table, count_statements, read_counts
from .logic import ReplicaLogic
from .plan import POLICIES, CopyError, TablePlan, plan_table, resolve_table, tree_key, unique_on
from . import queries
from .stream import Heap


def _rows(conn: psycopg.Connection, query: str, params: dict) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def resolve(names: list[str], mschema: Schema, rschema: Schema, cfg: Config) -> tuple[list[tuple[Table, Table]], list[str]]:
    """Master and replica tables for the names of a run, and the names that do not resolve."""
    pairs, problems = [], []
    for name in names:
        mt = resolve_table(mschema, name, cfg)
        if mt is None:
            problems.append(f"table {name} not found on the master (schemas: {', '.join(cfg.schemas)})")
            continue
        rt = rschema.find_table(mt.schema_name, mt.name)
        if rt is None:
            problems.append(f"table {mt.schema_name}.{mt.name} does not exist on the replica: run `replicator migrate` first")
            continue
        pairs.append((mt, rt))
    return pairs, problems


def preflight(master: psycopg.Connection, replica: psycopg.Connection, pairs: list[tuple[Table, Table]], cfg: Config, *,
              mschema: Schema, rschema: Schema,
              problems: list[str], policy: Policy | None, batch_size: int | None, incremental: bool,
              dry_run: bool, logic: ReplicaLogic | None,
              owned: set[str] = frozenset(), first: list | None = None,
              uncounted: list[Table] = (), kept: dict | None = None) -> list[TablePlan]:
    """Plans for every table, or `CopyError` listing every problem found (nothing written either way).
    ``first``: master statements still to send (their results unused); they go at the head of the
    master's batch, and the list is emptied once they are sent. ``uncounted``: master tables the
    introspection left to count (never analyzed); those of the run are counted in the same batch.
    ``kept``: `checkpoint.kept`; such a table, holding rows and with no policy, gets its `kept_from`."""
    problems = list(problems)
    kept = kept or {}
    plans: list[TablePlan] = []
    if pairs:
        mkeys = [mt.key for mt, _ in pairs]
        rkeys = [rt.key for _, rt in pairs]
        # the master's questions go together: one round trip
        head = list(first or [])
        chosen = set(mkeys)
        to_count = [t for t in uncounted if t.key in chosen]
        counting = count_statements(to_count)
        results = batch(master, head + [
            (queries.load("binary_unsafe"), {"tables": mkeys}), (DEFAULT_COLLATION_SQL, None),
            (queries.load("master_access"), {"tables": mkeys}), (queries.load("relation_storage"), {"tables": mkeys}),
            (queries.load("heaps"), {"tables": mkeys}), (queries.load("composite_layout"), {"tables": mkeys})] + counting,
            row_factory=dict_row)
        unsafe_rows, collation, readable_rows, mstorage, heap_rows, mlayout = results[len(head):len(head) + 6]
        mschema.row_counts.update(read_counts(to_count, results[len(head) + 6:]))
        if first:
            first.clear()
        unsafe: dict[str, set[str]] = {}
        for r in unsafe_rows:
            unsafe.setdefault(r["relation"], set()).add(r["column_name"])
        db_collations_differ = orderings_differ(ordering(collation[0]["db"]), default_ordering(replica))
        for mt, rt in pairs:
            key = mt.key_columns() or tree_key(mschema, mt) or []
            differ = db_collations_differ or any(
                c in mt.columns and c in rt.columns and mt.columns[c].collation != rt.columns[c].collation for c in key)
            plans.append(plan_table(mt, rt, cfg, mschema=mschema, policy=policy, batch_size=batch_size,
                                    binary_unsafe=unsafe.get(mt.key, set()), key_collations_differ=differ))
        access = {r["table"]: r for r in _rows(replica, queries.load("table_access"), {"tables": rkeys})}
        rstorage = {r["table"]: r["storage"] or "" for r in _rows(replica, queries.load("relation_storage"), {"tables": rkeys})}
        layouts = {(r["table"], r["column_name"]): r["layout"] for r in mlayout}, {
            (r["table"], r["column_name"]): r["layout"] for r in _rows(replica, queries.load("composite_layout"), {"tables": rkeys})}
        mstored = {r["table"]: r["storage"] or "" for r in mstorage}
        heaps: dict[str, list[Heap]] = {k: [] for k in mkeys}
        for r in heap_rows:
            heaps[r["table"]].append(Heap(r["schema_name"], r["name"], r["pages"], r["rows_per_page"]))
        for tp in plans:
            tp.master_storage, tp.replica_storage = mstored[tp.master.key], rstorage[tp.replica.key]
            tp.heaps = heaps[tp.master.key]
        # (a table row-level security applies to is not read: with row_security off that fails; it is
        # reported below)
        holds = replica.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
            sql.SQL("false") if access[p.replica.key]["rls_active"] else sql.SQL("EXISTS (SELECT 1 FROM {})").format(p.rfrom)
            for p in plans))).fetchone()
        readable = {r["table"]: r for r in readable_rows}
        replica.rollback()
        for tp, has_rows in zip(plans, holds):
            if has_rows and tp.policy is None and tp.replica_label in kept:
                tp.kept_from = kept[tp.replica_label]  # (its plan must hold all the same: it is compared)
            problems += tp.problems
            problems += _table_problems(tp, rschema, bool(has_rows), access[tp.replica.key], readable[tp.master.key],
                                        incremental=incremental, dry_run=dry_run,
                                        owned=tp.replica_label in owned, kept=tp.kept_from is not None)
            problems += _composite_problems(tp, *layouts)
        if logic is not None:
            problems += logic.problems()
        if not dry_run and not replica.execute(
                "SELECT (to_regclass('_replicator.checkpoints') IS NOT NULL AND to_regclass('_replicator.baselines') IS NOT NULL) "
                "OR has_database_privilege(current_database(), 'CREATE') "
                "OR has_schema_privilege((SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = '_replicator'), 'CREATE')"
        ).fetchone()[0]:
            role, db = replica.execute("SELECT current_user, current_database()").fetchone()
            problems.append(f"the replica role {role} cannot create the schema _replicator, where checkpoints and baselines are kept: "
                            f"GRANT CREATE ON DATABASE {db} TO {role}, or CREATE SCHEMA _replicator AUTHORIZATION {role}")
        replica.rollback()
    if problems:
        listed = "; ".join(f"{i}) {p}" for i, p in enumerate(problems, 1)) if len(problems) > 1 else problems[0]
        raise CopyError(f"nothing was copied: {listed}")
    return plans


def _composite_problems(tp: TablePlan, master: dict, replica: dict) -> list[str]:
    """Copied columns whose composite values list their attributes in another order on the replica
    (`composite_layout.sql`): each value would be read into the wrong attributes, silently where the
    types agree."""
    out = []
    for mc, rc in zip(tp.mcols, tp.rcols):
        m, r = master.get((tp.master.key, mc)), replica.get((tp.replica.key, rc))
        if m and r and m != r:
            out.append(f"{tp.replica_label}.{rc} holds composite values whose attributes differ in order or names on the "
                       f"replica (master {m}; replica {r}): they would land in the wrong attributes; recreate the type or "
                       "table on the replica as the master has it")
    return out


def _table_problems(tp: TablePlan, rschema: Schema, has_rows: bool, access: dict, readable: dict, *, incremental: bool, dry_run: bool,
                    owned: bool, kept: bool = False) -> list[str]:
    """What stops the table's copy. ``kept``: a stopped run's finished table, compared and not written
    (engine._keep): it holds rows with no policy, and needs no privilege to write."""
    out = []
    label, rlabel = tp.label, tp.replica_label
    if not readable["can_select"]:
        out.append(f"the master role may not SELECT {label} (GRANT pg_read_all_data, or SELECT on it)")
    elif readable["rls_active"]:
        out.append(f"row-level security would hide rows of {label} from the master role: give it BYPASSRLS "
                   "(or a permissive SELECT policy), or the replica would silently miss rows")
    if incremental and not tp.cursor:
        out.append(f"--incremental needs a cursor column for {label}: set [tables.{tp.master.name}] cursor = \"...\"")
    if has_rows and tp.policy is None and not owned and not kept:
        out.append(f"replica table {rlabel} is not empty: choose a policy with --policy, [copy] policy or "
                   f"[tables.{tp.master.name}] policy ({POLICIES})")
    if has_rows and tp.keyed and tp.policy != Policy.REPLACE and not tp.key_masked and not unique_on(rschema, tp.replica, tp.key_r):
        out.append(f"replica table {rlabel} holds rows but no unique key on ({', '.join(tp.key_r)}) like the master's: "
                   "rows could be doubled; restore the key (`replicator migrate`) or use --policy replace")
    unfilled = [c.name for c in tp.replica.columns.values()
                if c.name not in tp.rcols and not c.nullable and c.default is None and c.identity is None
                and c.generated is None]
    if unfilled and not has_rows:  # (into a table with rows, only inserts fail: the error says so then)
        out.append(f"replica column {rlabel}.{unfilled[0]} is NOT NULL without a default and has no master column: "
                   "every row copied in would fail; give it a default, or drop it (`replicator migrate`)")
    if access["rls_active"]:
        out.append(f"row-level security on the replica applies to its role on {rlabel}: COPY cannot write the "
                   "table and reads would miss rows; use a role with BYPASSRLS, a superuser, or the table's owner "
                   "(without FORCE ROW LEVEL SECURITY)")
    # a table a stopped copy of ours left running is made equal to the master: written as under mirror
    policy = Policy.MIRROR if tp.policy is None and owned and has_rows else tp.policy
    if not dry_run and not kept:
        need = ["can_insert"]
        if policy in (Policy.MASTER_WINS, Policy.MIRROR):
            need.append("can_update")
        if policy in (Policy.MIRROR, Policy.REPLACE):
            need.append("can_delete")
        missing = [n.removeprefix("can_").upper() for n in need if not access[n]]
        if missing:
            out.append(f"the replica role lacks {', '.join(missing)} on {rlabel}")
        always_updated = [c for c in tp.identity_always if c not in tp.key_r]
        if always_updated and has_rows and policy in (Policy.MASTER_WINS, Policy.MIRROR) and not access["owned"]:
            out.append(f"{rlabel}.{always_updated[0]} is GENERATED ALWAYS AS IDENTITY: updating it needs the replica "
                       "role to own the table")
    return out
