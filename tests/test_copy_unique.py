"""A value of another unique key that moves between rows on the master: a freed email reused by a new
row, two values swapped, three rotated. The replica still holds each value on its old row, so writing
the master's rows as they come fails on the unique index, on every run; copy first deletes the rows
holding a value a master row takes (they come back with their new values). Judged by the independent
checksum."""

from __future__ import annotations

import pytest
from copyhelp import both, same

from replicator.copy import copy_tables
from replicator.errors import ReplicatorError

MOVES = [
    "DELETE FROM u WHERE id = 10",
    "INSERT INTO u VALUES (5000, 'e10', 0)",  # a freed value reused by a new row
    "BEGIN; UPDATE u SET email = 'tmp' WHERE id = 1; UPDATE u SET email = 'e1' WHERE id = 2; "
    "UPDATE u SET email = 'e2' WHERE id = 1; COMMIT",  # swapped
    "BEGIN; UPDATE u SET email = 'tmp' WHERE id = 700; UPDATE u SET email = 'e700' WHERE id = 1400; "
    "UPDATE u SET email = 'e1400' WHERE id = 2100; UPDATE u SET email = 'e2100' WHERE id = 700; COMMIT",  # rotated
    "UPDATE u SET email = 'gone' WHERE id = 2500",
    "INSERT INTO u VALUES (5001, 'e2500', 1)",  # freed by an update
]


@pytest.mark.parametrize("policy", ["master-wins", "mirror"])
@pytest.mark.parametrize("restart", [False, True], ids=["since-last-sync", "whole-table"])
def test_unique_values_moving_between_rows(master_url, replica_url, sql_on, policy, restart):
    both(sql_on, master_url, replica_url, "CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE, n int)")
    sql_on(master_url, "INSERT INTO u SELECT g, 'e' || g, g FROM generate_series(1, 3000) g")
    copy_tables(master_url, replica_url, ["u"])
    for statement in MOVES:
        sql_on(master_url, statement)
    # a row only the replica has holds a value the master now gives one of its rows
    sql_on(replica_url, "UPDATE u SET email = 'local' WHERE id = 3000")
    sql_on(replica_url, "INSERT INTO u VALUES (9000, 'e3000', -1)")
    sql_on(master_url, "UPDATE u SET email = 'e3000-old' WHERE id = 3000; INSERT INTO u VALUES (5002, 'e3000', 2)")
    t = copy_tables(master_url, replica_url, ["u"], policy=policy, restart=restart, batch_size=100).tables[0]
    assert same(sql_on, master_url, replica_url, "u")  # the replica-only row lost its value to the master's
    assert t.displaced >= 1 and t.deleted >= t.displaced
    again = copy_tables(master_url, replica_url, ["u"], policy=policy, batch_size=100).tables[0]
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)


def test_no_displacement_where_the_master_does_not_keep_the_value_unique(master_url, replica_url, sql_on):
    # a unique index only the replica has: the master may hold a value twice, and deleting the first
    # row for the second would lose it; the unique violation stops the copy instead, nothing is lost
    sql_on(master_url, "CREATE TABLE u (id int PRIMARY KEY, code text)")
    sql_on(replica_url, "CREATE TABLE u (id int PRIMARY KEY, code text UNIQUE)")
    sql_on(master_url, "INSERT INTO u SELECT g, 'c' || g FROM generate_series(1, 300) g")
    copy_tables(master_url, replica_url, ["u"])
    sql_on(master_url, "UPDATE u SET code = 'c3' WHERE id = 250")
    with pytest.raises(ReplicatorError, match="u_code_key.*fix that first"):
        copy_tables(master_url, replica_url, ["u"], policy="master-wins", batch_size=50)
    assert sql_on(replica_url, "SELECT count(*) FROM u") == [(300,)]


def test_no_displacement_where_a_delete_would_cascade(master_url, replica_url, sql_on, role):
    # without session_replication_role the replica's foreign-key actions fire: deleting a user to free
    # its email would delete its orders; the copy stops on the unique value instead
    from conftest import url_with

    ddl = ("CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE); "
           "CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users ON DELETE CASCADE)")
    sql_on(master_url, ddl + "; INSERT INTO users SELECT g, 'e' || g FROM generate_series(1, 100) g; "
                             "INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g")
    sql_on(replica_url, f"GRANT CREATE ON SCHEMA public TO {role}; CREATE SCHEMA _replicator AUTHORIZATION {role}; "
                        f"SET ROLE {role}; {ddl}")
    owner_url = url_with(replica_url, user=role, password="pw")
    copy_tables(master_url, owner_url, ["users", "orders"])
    sql_on(master_url, "BEGIN; UPDATE users SET email = 'tmp' WHERE id = 1; UPDATE users SET email = 'e1' WHERE id = 2; "
                       "UPDATE users SET email = 'e2' WHERE id = 1; COMMIT")
    with pytest.raises(ReplicatorError, match="users_email_key.*fix that first"):
        copy_tables(master_url, owner_url, ["users"], policy="master-wins")
    assert sql_on(replica_url, "SELECT count(*) FROM orders") == [(100,)]
