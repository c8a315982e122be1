"""A generated schema of about 100 tables with views, functions, aggregates, triggers, policies and
types (enum, domain, composite, range), created on the master in a random order, migrates into an
empty database in one run, and then matches it: by analyze, and by the catalog's own account
(test_roundtrip's fingerprint).

Names are random too, so neither creation order (OIDs) nor name order says anything about what
depends on what: only the catalog's dependencies can order the plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from replicator.analyze import AnalyzeOptions, compute
from replicator.config import Config
from replicator.guard import MasterGuard
from replicator.migrate import MigrateOptions, run_migrate

from test_roundtrip import fingerprints


@dataclass
class Obj:
    name: str
    sql: str
    deps: set[str] = field(default_factory=set)


def generate(seed: int, tables: int = 100) -> list[Obj]:
    """Objects with their dependencies, in a random order that respects them."""
    rnd = random.Random(seed)
    used: set[str] = set()

    def name(prefix: str) -> str:
        while True:
            n = f"{rnd.choice('abcdefghijklmnopqrstuvwxyz')}{rnd.randrange(10**6):06d}_{prefix}"
            if n not in used:
                used.add(n)
                return n

    objs: list[Obj] = []
    enums = [name("enum") for _ in range(8)]
    for e in enums:
        objs.append(Obj(e, f"CREATE TYPE {e} AS ENUM ('a', 'b', 'c')"))
    domains = []
    for _ in range(5):
        d = name("dom")
        domains.append(d)
        objs.append(Obj(d, f"CREATE DOMAIN {d} AS integer CONSTRAINT {d}_pos CHECK (VALUE >= 0)"))
    composites = []
    for _ in range(5):
        c, e = name("comp"), rnd.choice(enums)
        composites.append(c)
        objs.append(Obj(c, f"CREATE TYPE {c} AS (x integer, label text, kind {e})", {e}))
    ranges = []
    for _ in range(3):
        r = name("rng")
        ranges.append(r)
        objs.append(Obj(r, f"CREATE TYPE {r} AS RANGE (subtype = date)"))
    scalars = []
    for _ in range(6):
        f = name("fn")
        scalars.append(f)
        objs.append(Obj(f, f"CREATE FUNCTION {f}(a integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT a + 1'"))
    adder = name("add")
    objs.append(Obj(adder, f"CREATE FUNCTION {adder}(integer, integer) RETURNS integer LANGUAGE sql IMMUTABLE "
                           "AS 'SELECT coalesce($1, 0) + coalesce($2, 0)'"))
    aggs = []
    for _ in range(3):
        a = name("agg")
        aggs.append(a)
        objs.append(Obj(a, f"CREATE AGGREGATE {a}(integer) (SFUNC = {adder}, STYPE = integer, INITCOND = '0')", {adder}))
    trig_fn = name("trg_fn")
    objs.append(Obj(trig_fn, f"CREATE FUNCTION {trig_fn}() RETURNS trigger LANGUAGE plpgsql AS "
                             "$$ BEGIN NEW.note := coalesce(NEW.note, 'set'); RETURN NEW; END $$"))

    table_names = [name("tbl") for _ in range(tables)]
    kinds: dict[str, str] = {}
    for i, t in enumerate(table_names):
        deps: set[str] = set()
        cols = ["id integer NOT NULL", "note text", "n integer"]
        typed = rnd.sample(enums + domains + composites + ranges, 2)
        for j, ty in enumerate(typed):
            cols.append(f"c{j} {ty}")
            deps.add(ty)
        if rnd.random() < 0.3:
            f = rnd.choice(scalars)
            cols[2] = f"n integer DEFAULT {f}(41)"
            deps.add(f)
        if rnd.random() < 0.2:
            f = rnd.choice(scalars)
            cols.append(f"CONSTRAINT {t}_chk CHECK ({f}(n) > 0)")
            deps.add(f)
        kind = "plain"
        if i % 20 == 7:
            kind = "partitioned"
            objs.append(Obj(t, f"CREATE TABLE {t} ({', '.join(cols)}, PRIMARY KEY (id)) PARTITION BY RANGE (id)", deps))
            for lo in (0, 1000):
                p = name("part")
                objs.append(Obj(p, f"CREATE TABLE {p} PARTITION OF {t} FOR VALUES FROM ({lo}) TO ({lo + 1000})", {t}))
        elif i % 25 == 11 and i > 0 and kinds.get(table_names[i - 1]) == "plain":
            kind = "child"
            parent = table_names[i - 1]
            objs.append(Obj(t, f"CREATE TABLE {t} (extra text) INHERITS ({parent})", {parent}))
        else:
            objs.append(Obj(t, f"CREATE TABLE {t} ({', '.join(cols)}, PRIMARY KEY (id))", deps))
        kinds[t] = kind
    keyed = [t for t in table_names if kinds[t] != "child"]
    for t in keyed:
        if rnd.random() < 0.6:
            other = rnd.choice(keyed)
            fk = name("fk")
            objs.append(Obj(fk, f"ALTER TABLE {t} ADD CONSTRAINT {fk} FOREIGN KEY (n) REFERENCES {other} (id)", {t, other}))
    rowfns = []
    for t in rnd.sample(keyed, 8):
        f = name("rows")
        rowfns.append((f, t))
        objs.append(Obj(f, f"CREATE FUNCTION {f}() RETURNS SETOF {t} LANGUAGE sql STABLE AS 'SELECT * FROM {t}'", {t}))
    for c in composites:
        f = name("show")
        objs.append(Obj(f, f"CREATE FUNCTION {f}(v {c}) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT v.label'", {c}))
    views: list[str] = []
    for _ in range(25):
        v = name("view")
        roll = rnd.random()
        if views and roll < 0.3:
            base = rnd.choice(views)
            objs.append(Obj(v, f"CREATE VIEW {v} AS SELECT id, n FROM {base} WHERE n IS NOT NULL", {base}))
        elif roll < 0.5:
            f, t = rnd.choice(rowfns)
            objs.append(Obj(v, f"CREATE VIEW {v} AS SELECT r.id, r.n FROM {f}() r", {f}))
        elif roll < 0.7:
            a, t = rnd.choice(aggs), rnd.choice(keyed)
            objs.append(Obj(v, f"CREATE VIEW {v} AS SELECT 0 AS id, {a}(n) AS n FROM {t}", {a, t}))
        else:
            f, t = rnd.choice(scalars), rnd.choice(keyed)
            objs.append(Obj(v, f"CREATE VIEW {v} AS SELECT id, {f}(n) AS n FROM {t}", {f, t}))
        views.append(v)
    for t in rnd.sample(keyed, 10):
        tg = name("trg")
        objs.append(Obj(tg, f"CREATE TRIGGER {tg} BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {trig_fn}()",
                        {t, trig_fn}))
    for t in rnd.sample(keyed, 6):
        pol, f = name("pol"), rnd.choice(scalars)
        objs.append(Obj(pol, f"CREATE POLICY {pol} ON {t} USING ({f}(n) > 0)", {t, f}))
        objs.append(Obj(name("rls"), f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY", {t}))
    mv = name("mview")
    objs.append(Obj(mv, f"CREATE MATERIALIZED VIEW {mv} AS SELECT id FROM {views[0]}", {views[0]}))

    # a random order that respects the dependencies
    pending = {o.name: o for o in objs}
    done: set[str] = set()
    out: list[Obj] = []
    while pending:
        ready = [o for o in pending.values() if o.deps <= done]
        pick = rnd.choice(ready)
        out.append(pick)
        done.add(pick.name)
        del pending[pick.name]
    return out


@pytest.mark.parametrize("seed", [8, 2024])
def test_generated_schema_migrates_into_an_empty_database(seed, master_url, replica_url, sql_on, tmp_path):
    objs = generate(seed)
    assert sum(o.sql.startswith("CREATE TABLE") and "PARTITION OF" not in o.sql for o in objs) == 100
    sql_on(master_url, ";\n".join(o.sql for o in objs))
    cfg = Config(master_url=master_url, replica_url=replica_url)
    res = run_migrate(cfg, tmp_path, MigrateOptions())
    assert res.skipped == [] and len(res.applied) > 300
    assert all(r["allowed"] for r in res.master_audit)
    guard = MasterGuard()
    _, _, plan, s = compute(cfg, AnalyzeOptions(), guard)
    s.close()
    assert [str(c) for c in plan.changes] == [] and plan.steps == []
    assert all(e.allowed for e in guard.audit)
    m, r = fingerprints(sql_on, master_url, replica_url)
    assert sorted(m - r) == [] and sorted(r - m) == []
