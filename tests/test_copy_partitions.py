"""Partitioned tables and inheritance, shaped like the pagila sample database: `payment` partitioned by
month, its foreign keys declared on the partitions only."""

from __future__ import annotations

import pytest
from copyhelp import both, same

from replicator.copy import copy_tables

PAGILA_LIKE = """
CREATE TABLE store (store_id int PRIMARY KEY, name text);
CREATE TABLE customer (customer_id int PRIMARY KEY, store_id int NOT NULL REFERENCES store, name text,
                       active boolean DEFAULT true, last_update timestamptz DEFAULT now());
CREATE TABLE payment (payment_id int NOT NULL, customer_id int NOT NULL, amount numeric(5,2) NOT NULL,
                      payment_date timestamptz NOT NULL) PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p2022_01 PARTITION OF payment FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2022-02-01 00:00:00+00');
CREATE TABLE payment_p2022_02 PARTITION OF payment FOR VALUES FROM ('2022-02-01 00:00:00+00') TO ('2022-03-01 00:00:00+00');
CREATE TABLE payment_p2022_03 PARTITION OF payment FOR VALUES FROM ('2022-03-01 00:00:00+00') TO ('2022-04-01 00:00:00+00');
ALTER TABLE payment_p2022_01 ADD PRIMARY KEY (payment_date, payment_id);
ALTER TABLE payment_p2022_02 ADD PRIMARY KEY (payment_date, payment_id);
ALTER TABLE payment_p2022_03 ADD PRIMARY KEY (payment_date, payment_id);
ALTER TABLE payment_p2022_01 ADD FOREIGN KEY (customer_id) REFERENCES customer;
ALTER TABLE payment_p2022_02 ADD FOREIGN KEY (customer_id) REFERENCES customer;
ALTER TABLE payment_p2022_03 ADD FOREIGN KEY (customer_id) REFERENCES customer;
"""

FILL = """
INSERT INTO store VALUES (1, 'one'), (2, 'two');
INSERT INTO customer SELECT i, i % 2 + 1, 'c' || i, true, '2006-02-15' FROM generate_series(1, 300) i;
INSERT INTO payment SELECT i, i % 300 + 1, (i % 1000) / 100.0,
       timestamptz '2022-01-01 00:00+00' + (i % 89) * interval '1 day' + i * interval '1 second'
FROM generate_series(1, 9000) i;
"""


def test_partitioned_table_with_fks_on_partitions_copies_after_its_parents(master_url, replica_url, sql_on):
    both(sql_on, master_url, replica_url, PAGILA_LIKE)
    sql_on(master_url, FILL)
    res = copy_tables(master_url, replica_url, all_tables=True, batch_size=1000)
    order = [t.table for t in res.tables]
    # partitions are copied through their root (never twice), after the tables they reference
    assert order == ["public.store", "public.customer", "public.payment"]
    assert res.orphans == []
    for t in ("store", "customer", "payment", "payment_p2022_02"):
        assert same(sql_on, master_url, replica_url, t), t
    assert res.table("payment").inserted == 9000


@pytest.mark.parametrize("policy", ["master-wins", "mirror"])
def test_partitioned_table_compare_path(master_url, replica_url, sql_on, policy):
    both(sql_on, master_url, replica_url, PAGILA_LIKE)
    sql_on(master_url, FILL)
    copy_tables(master_url, replica_url, all_tables=True, batch_size=1000)
    sql_on(master_url, "UPDATE payment SET amount = amount + 1 WHERE payment_id % 1000 = 0; "
                       "DELETE FROM payment WHERE payment_id = 4242; "
                       "INSERT INTO payment VALUES (9001, 5, 1.00, '2022-03-15 12:00+00')")
    res = copy_tables(master_url, replica_url, ["payment"], policy=policy, batch_size=1000)
    t = res.tables[0]
    assert (t.updated, t.inserted) == (9, 1)
    assert t.deleted == (1 if policy == "mirror" else 0)
    if policy == "mirror":
        assert same(sql_on, master_url, replica_url, "payment")
    assert same(sql_on, master_url, replica_url, "(SELECT * FROM payment WHERE payment_id <> 4242)")


def test_inheritance_children_are_not_copied_twice(master_url, replica_url, sql_on):
    ddl = """CREATE TABLE cities (id int PRIMARY KEY, name text);
             CREATE TABLE capitals (state text) INHERITS (cities);
             ALTER TABLE capitals ADD PRIMARY KEY (id);"""
    both(sql_on, master_url, replica_url, ddl)
    sql_on(master_url, "INSERT INTO cities SELECT i, 'c' || i FROM generate_series(1, 100) i; "
                       "INSERT INTO capitals SELECT i, 'k' || i, 'S' FROM generate_series(101, 120) i")
    copy_tables(master_url, replica_url, all_tables=True)
    assert sql_on(replica_url, "SELECT count(*) FROM ONLY cities") == [(100,)]
    assert sql_on(replica_url, "SELECT count(*) FROM cities") == [(120,)]
    assert same(sql_on, master_url, replica_url, "capitals") and same(sql_on, master_url, replica_url, "cities")
    t = copy_tables(master_url, replica_url, ["cities"], policy="mirror").tables[0]
    assert (t.deleted, t.inserted, t.updated) == (0, 0, 0)  # the children's rows are not "extra" rows of cities
