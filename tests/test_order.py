"""The ordering mechanism (graphlib) and foreign-key order over partition trees."""

from __future__ import annotations

import random

import pytest

from replicator.introspect.models import Constraint, Schema, Table
from replicator.order import Graph, OrderCycle, fk_order, reverse_order


def test_dependencies_first_and_ties_by_name():
    g = Graph()
    g.add("c", after={"a"})
    g.add("b")
    g.add("a")
    g.add("d", after={"c", "b"})
    assert g.order() == ["a", "b", "c", "d"]


def test_unknown_dependencies_are_ignored():
    g = Graph()
    g.add("t", after={"pg_catalog.int4", "t2"})
    g.add("t2")
    assert g.order() == ["t2", "t"]


def test_order_is_the_same_whatever_the_insertion_order():
    edges = {f"n{i}": {f"n{j}" for j in range(i) if (i * 7 + j) % 3 == 0} for i in range(40)}
    orders = set()
    for seed in range(5):
        items = list(edges.items())
        random.Random(seed).shuffle(items)
        g = Graph()
        for n, d in items:
            g.add(n, d)
        order = g.order()
        pos = {n: i for i, n in enumerate(order)}
        assert all(pos[d] < pos[n] for n, ds in edges.items() for d in ds)
        orders.add(tuple(order))
    assert len(orders) == 1


def test_cycle_raises_with_its_nodes():
    g = Graph()
    g.add("a", after={"b"})
    g.add("b", after={"c"})
    g.add("c", after={"a"})
    with pytest.raises(OrderCycle) as e:
        g.order()
    assert set(e.value.cycle) == {"a", "b", "c"}


def test_cycle_broken_at_a_breakable_edge():
    g = Graph()
    g.add("a", after={"b"})
    g.add("b", after={"a"})
    g.add("c", after={"a"})
    # only b -> a may be broken
    res = g.order_breaking(lambda n, d: (n, d) == ("b", "a"))
    assert res.broken == [("b", "a")]
    assert res.nodes.index("b") < res.nodes.index("a") < res.nodes.index("c")


def test_cycle_without_breakable_edge_raises():
    g = Graph()
    g.add("a", after={"b"})
    g.add("b", after={"a"})
    with pytest.raises(OrderCycle):
        g.order_breaking(lambda n, d: False)


def test_self_loops_are_reported_not_fatal():
    g = Graph()
    g.add("emp", after={"emp", "dept"})
    g.add("dept")
    assert g.order() == ["dept", "emp"]
    assert g.self_loops() == ["emp"]


def test_reverse_order_drops_dependents_first():
    assert reverse_order(["v1", "v2", "t"], {"v2": ["v1"], "v1": ["t"]}) == ["v2", "v1", "t"]


def _table(key, fks=(), partition_of=None, inherited=False):
    schema, name = key.split(".")
    cons = {
        n: Constraint(name=n, kind="foreign key", definition=f"FOREIGN KEY (x) REFERENCES {ref}(id)",
                      referenced_table=ref, inherited=inherited)
        for n, ref in fks
    }
    return Table(key=key, schema_name=schema, name=name, constraints=cons, partition_of=partition_of)


def _schema(*tables):
    return Schema(server_version=150000, database="d", schemas=["public"], tables={t.key: t for t in tables})


def test_fk_declared_on_partitions_orders_the_whole_tree():
    # pagila-like: payment is partitioned, its FK to customer is declared on each partition only
    s = _schema(
        _table("public.payment", partition_of=None),
        _table("public.payment_p1", fks=[("payment_p1_customer_fk", "public.customer")], partition_of="public.payment"),
        _table("public.payment_p2", fks=[("payment_p2_customer_fk", "public.customer")], partition_of="public.payment"),
        _table("public.customer", fks=[("customer_store_fk", "public.store")]),
        _table("public.store"),
    )
    order = fk_order(s)
    assert order.tables == ["public.store", "public.customer", "public.payment"]
    assert order.deferred == []


def test_fk_referencing_a_partition_orders_its_root():
    s = _schema(
        _table("public.m"), _table("public.m_1", partition_of="public.m"),
        _table("public.c", fks=[("c_fk", "public.m_1")]),
    )
    assert fk_order(s).tables == ["public.m", "public.c"]


def test_cloned_fks_are_not_counted_twice():
    s = _schema(
        _table("public.p", fks=[("p_fk", "public.q")]),
        _table("public.p_1", fks=[("p_fk", "public.q")], partition_of="public.p", inherited=True),
        _table("public.q"),
    )
    assert fk_order(s).tables == ["public.q", "public.p"]


def test_cycles_and_self_references_are_deferred():
    s = _schema(
        _table("public.a", fks=[("a_b", "public.b")]),
        _table("public.b", fks=[("b_a", "public.a")]),
        _table("public.emp", fks=[("emp_boss", "public.emp")]),
    )
    order = fk_order(s)
    assert set(order.tables) == {"public.a", "public.b", "public.emp"}
    names = sorted(d.name for d in order.deferred)
    assert names == ["a_b", "emp_boss"]


def test_selection_is_mapped_to_roots():
    s = _schema(_table("public.m"), _table("public.m_1", partition_of="public.m"), _table("public.x"))
    assert fk_order(s, ["public.m_1"]).tables == ["public.m"]


def test_parents_leave_out_the_edges_broken_for_cycles():
    s = _schema(
        _table("public.a", fks=[("a_b", "public.b")]),
        _table("public.b", fks=[("b_a", "public.a")]),
        _table("public.c", fks=[("c_a", "public.a")]),
    )
    order = fk_order(s)
    assert order.parents["public.c"] == {"public.a"}
    # exactly one of the two edges of the cycle remains: a schedule over parents can finish
    assert len(order.parents["public.a"]) + len(order.parents["public.b"]) == 1
