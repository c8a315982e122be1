"""Copy and verify on tables and columns whose names hold `%`, `%s` or other odd characters.

psycopg reads placeholders in a statement's whole text, names included: a column named `"50%s"` in a
statement that takes parameters used to be read as a placeholder. Judged by the independent checksum.
"""

from __future__ import annotations

import pytest
from copyhelp import both, same

from conftest import run_cli
from replicator.copy import copy_tables

TABLE = '"50%s off"'
DDL = f'CREATE TABLE {TABLE} ("id%" int{{key}}, "a%b" int, "%s" text, "100%(x)s" jsonb, "Ünï ""q""" text)'
FILL = (f"INSERT INTO {TABLE} SELECT i, i % 7, 'v%' || i, jsonb_build_object('p%', i), 'ü' || i "
        "FROM generate_series(1, 3000) i")


@pytest.mark.parametrize("keyed", [True, False])
@pytest.mark.parametrize("jobs", [1, 2])
def test_names_with_percent_signs_on_every_path(master_url, replica_url, sql_on, keyed, jobs, tmp_path):
    both(sql_on, master_url, replica_url, DDL.format(key=" PRIMARY KEY" if keyed else ""))
    sql_on(master_url, FILL)
    name = "public.50%s off"
    copy_tables(master_url, replica_url, [name], batch_size=500, jobs=jobs)  # empty: page ranges
    assert same(sql_on, master_url, replica_url, TABLE)
    # drift on both sides, then every way of bringing it back
    sql_on(master_url, f'UPDATE {TABLE} SET "%s" = \'changed%\' WHERE "id%" % 97 = 0')
    sql_on(replica_url, f'DELETE FROM {TABLE} WHERE "id%" % 89 = 0')
    sql_on(replica_url, f'UPDATE {TABLE} SET "a%b" = -1 WHERE "id%" % 83 = 0')
    copy_tables(master_url, replica_url, [name], policy="mirror", batch_size=500, jobs=jobs)
    assert same(sql_on, master_url, replica_url, TABLE)
    sql_on(replica_url, f'UPDATE {TABLE} SET "Ünï ""q""" = NULL WHERE "id%" % 101 = 0')
    copy_tables(master_url, replica_url, [name], policy="mirror", batch_size=500, jobs=jobs, restart=True)
    assert same(sql_on, master_url, replica_url, TABLE)
    res = run_cli("verify", "--deep", "--table", name, "--master", master_url, "--replica", replica_url,
                  "--out-dir", str(tmp_path))
    assert res.code == 0, res.stdout + res.stderr
