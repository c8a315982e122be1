"""The one ordering mechanism: dependency graphs sorted with the standard library's `graphlib`.

Everything that must happen "after what it depends on" goes through here: the migration plan
(objects after the objects they use, drops in reverse) and the foreign-key order in which copy loads
tables and analyze reports them.

    from replicator.order import Graph
    g = Graph()
    g.add("public.orders", after={"public.customers"})
    g.order()                      # ['public.customers', 'public.orders']

Ties are broken by a sort key (the node's text by default), so the same graph always gives the same
order. A cycle either raises (:meth:`Graph.order`) or is broken by removing edges that a caller
marks as breakable (:meth:`Graph.order_breaking`), the way pg_dump creates tables first and adds the
foreign keys that close a cycle afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Generic, TypeVar

N = TypeVar("N", bound=Hashable)


class OrderCycle(Exception):
    """A dependency cycle that no breakable edge could open; ``cycle`` lists its nodes in order."""

    def __init__(self, cycle: list):
        super().__init__("dependency cycle: " + " -> ".join(str(n) for n in cycle))
        self.cycle = cycle


@dataclass
class Ordering(Generic[N]):
    """The nodes in dependency order, and the edges (node, dependency) removed to break cycles."""

    nodes: list[N]
    broken: list[tuple[N, N]] = field(default_factory=list)


class Graph(Generic[N]):
    """Nodes and "comes after" edges. Edges to nodes that were never added are ignored, so callers
    can add every dependency they know of without first filtering it to the objects at hand."""

    def __init__(self, sort_key: Callable[[N], object] = str):
        self._deps: dict[N, set[N]] = {}
        self._sort_key = sort_key

    def add(self, node: N, after: Iterable[N] = ()) -> None:
        self._deps.setdefault(node, set()).update(after)

    def __contains__(self, node: object) -> bool:
        return node in self._deps

    def __len__(self) -> int:
        return len(self._deps)

    def dependencies(self, node: N) -> set[N]:
        """The known dependencies of ``node`` that are nodes of this graph (self-loops excluded)."""
        return {d for d in self._deps.get(node, ()) if d in self._deps and d != node}

    def self_loops(self) -> list[N]:
        """Nodes that depend on themselves (a table whose foreign key references its own key)."""
        return sorted((n for n, d in self._deps.items() if n in d), key=self._sort_key)

    def order(self) -> list[N]:
        """Every node after its dependencies; raises :class:`OrderCycle` on a cycle. Self-loops are
        ignored here (see :meth:`self_loops`)."""
        return self._sort({n: self.dependencies(n) for n in self._deps})

    def order_breaking(self, breakable: Callable[[N, N], bool] = lambda _n, _d: True) -> Ordering[N]:
        """Like :meth:`order`, but a cycle is opened by removing one edge ``(node, dependency)`` of it
        for which ``breakable`` is true (the first in sort order); removed edges are reported. Raises
        :class:`OrderCycle` when a cycle has no breakable edge."""
        deps = {n: self.dependencies(n) for n in self._deps}
        broken: list[tuple[N, N]] = []
        while True:
            try:
                return Ordering(self._sort(deps), broken)
            except OrderCycle as e:
                cycle = e.cycle  # [a, b, ..., a]: each node depends on the next one
                edges = [(cycle[i], cycle[i + 1]) for i in range(len(cycle) - 1)]
                candidates = [(n, d) for n, d in edges if breakable(n, d)]
                if not candidates:
                    raise
                n, d = min(candidates, key=lambda e: (self._sort_key(e[0]), self._sort_key(e[1])))
                deps[n].discard(d)
                broken.append((n, d))

    def _sort(self, deps: Mapping[N, set[N]]) -> list[N]:
        ts: TopologicalSorter[N] = TopologicalSorter(deps)
        try:
            ts.prepare()
        except CycleError as e:
            # graphlib reports [x, ..., x] where each node is a predecessor of the next, that is,
            # each node is a *dependency* of the next: reverse it so each depends on the next one.
            raise OrderCycle(list(reversed(e.args[1]))) from None
        out: list[N] = []
        while ts.is_active():
            ready = sorted(ts.get_ready(), key=self._sort_key)
            out.extend(ready)
            ts.done(*ready)
        return out


def reverse_order(nodes: Iterable[N], deps: Mapping[N, Iterable[N]], sort_key: Callable[[N], object] = str) -> list[N]:
    """``nodes`` with every node before the nodes it depends on: the order to drop things in."""
    g: Graph[N] = Graph(sort_key)
    for n in nodes:
        g.add(n, deps.get(n, ()))
    return list(reversed(g.order()))


# -------------------------------------------------------------------------------------------------
# Tables in foreign-key order (copy loads them so; analyze reports them so)


@dataclass
class ForeignKeyRef:
    """A foreign key as declared: on ``table`` (possibly a partition), named ``name``."""

    table: str
    name: str
    definition: str
    references: str


@dataclass
class TableOrder:
    """Tables with referenced tables first. Partitions are folded into the root of their tree (a
    partitioned table is copied through its root, and a foreign key declared on a partition orders
    the whole tree). ``deferred`` are the foreign keys that could not be honoured by order: those that
    close a cycle and those that reference their own tree."""

    tables: list[str]
    deferred: list[ForeignKeyRef] = field(default_factory=list)
    #: per table, the tables it must come after (cycles broken, self-references left out)
    parents: dict[str, set[str]] = field(default_factory=dict)

    def position(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.tables)}


def partition_root(schema, key: str) -> str:
    """The root of the partition tree ``key`` belongs to (``key`` itself when it is not a partition)."""
    seen = set()
    while key in schema.tables and schema.tables[key].partition_of and key not in seen:
        seen.add(key)
        key = schema.tables[key].partition_of
    return key


def fk_order(schema, tables: Iterable[str] | None = None) -> TableOrder:
    """Root tables of ``schema`` (or the given table keys, mapped to their roots) in foreign-key order.

    Foreign keys are read from every table of a tree, partitions included, and only where they are
    declared (not the clones PostgreSQL puts on partitions)."""
    roots = {partition_root(schema, k) for k in (tables if tables is not None else schema.tables)}
    g: Graph[str] = Graph()
    fks: dict[tuple[str, str], list[ForeignKeyRef]] = {}
    for k in roots:
        g.add(k)
    for t in schema.tables.values():
        src = partition_root(schema, t.key)
        if src not in roots:
            continue
        for con in t.foreign_keys:
            if con.inherited or con.referenced_table is None:
                continue
            dst = partition_root(schema, con.referenced_table)
            ref = ForeignKeyRef(t.key, con.name, con.definition, con.referenced_table)
            fks.setdefault((src, dst), []).append(ref)
            if dst in roots:
                g.add(src, {dst})
    ordering = g.order_breaking()
    deferred = [r for k in g.self_loops() for r in fks.get((k, k), [])]
    for src, dst in ordering.broken:
        deferred += fks.get((src, dst), [])
    broken = set(ordering.broken)
    parents = {k: {d for d in g.dependencies(k) if (k, d) not in broken} for k in ordering.nodes}
    return TableOrder(ordering.nodes, deferred, parents)
