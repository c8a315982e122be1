"""The plan's dependency graph: steps grouped into nodes, one per object and tier, ordered with
:mod:`replicator.order` over the dependencies read from both catalogs.

Three tiers run one after the other:

* **drop** (tier 0): what is in the way, in reverse dependency order on the *replica* (a view
  before the table it reads, a foreign key before the key it references): objects to recreate,
  objects only on the replica that hold data or names (tables, views, columns, constraints...),
  dependents of anything dropped or retyped;
* **create** (tier 1): creations and in-place changes in dependency order on the *master*
  (a type before the table whose column has it, a table before the function returning its rows,
  the function before the view calling it, the referenced key before the foreign key);
* **cleanup** (tier 2): drops that must wait until nothing uses the object any more: the old type
  of a recreated enum, and functions, sequences, types, schemas and extensions only on the replica
  (a column still of that type is retyped in tier 1).

A node is one object (``ref``: kind, key, nested name) in one tier; its steps keep the order they
were added in (``ALTER COLUMN ... SET NOT NULL`` before ``ADD GENERATED ... AS IDENTITY``).
Constraints, indexes, triggers and policies are nodes of their own, separate from their table, so
two new tables whose foreign keys reference each other are created first and the keys added after,
as pg_dump does: at this granularity a cycle of foreign keys is no cycle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import ReplicatorError
from ..introspect.models import Dependency, Schema
from ..order import Graph, OrderCycle
from .model import Step
from .objects import Ref

DROP, CREATE, CLEANUP = 0, 1, 2
TIER_NAMES = {DROP: "drop", CREATE: "create", CLEANUP: "cleanup"}
NESTED_KINDS = ("constraint", "index", "trigger", "policy", "rule", "column")

NodeId = tuple[int, Ref]


@dataclass
class Node:
    tier: int
    ref: Ref
    steps: list[Step] = field(default_factory=list)
    needs: set[Ref] = field(default_factory=set)  # refs (master side) that must be created first
    schema: str | None = None  # key of the schema the object lives in

    @property
    def id(self) -> NodeId:
        return (self.tier, self.ref)


def _ref_text(node_id: NodeId) -> str:
    tier, (kind, key, name) = node_id
    return f"{TIER_NAMES[tier]} {kind} {key}" + (f"/{name}" if name else "")


class PlanGraph:
    """Nodes of steps, and their order."""

    def __init__(self, master: Schema, replica: Schema):
        self.master, self.replica = master, replica
        self.nodes: dict[NodeId, Node] = {}
        self._columns: dict[tuple[int, str], set[str]] = defaultdict(set)  # (tier, table) -> column nodes
        self.requires: dict[int, list[Step]] = {}  # id(step) -> steps it needs

    # -- building --------------------------------------------------------------------------------

    def node(self, tier: int, ref: Ref, schema: str | None = None) -> Node:
        nid = (tier, ref)
        n = self.nodes.get(nid)
        if n is None:
            n = self.nodes[nid] = Node(tier, ref, schema=schema)
            if ref[0] == "column":
                self._columns[(tier, ref[1])].add(ref[2] or "")
        elif schema and not n.schema:
            n.schema = schema
        return n

    def has(self, tier: int, ref: Ref) -> bool:
        return (tier, ref) in self.nodes

    def add(self, tier: int, ref: Ref, step: Step, *, requires: list[Step] | tuple[Step, ...] = (),
            schema: str | None = None) -> Step:
        self.node(tier, ref, schema).steps.append(step)
        if requires:
            self.requires.setdefault(id(step), []).extend(requires)
        return step

    def require(self, step: Step, *others: Step | None) -> None:
        self.requires.setdefault(id(step), []).extend(o for o in others if o is not None)

    def steps_of(self, tier: int, ref: Ref) -> list[Step]:
        n = self.nodes.get((tier, ref))
        return list(n.steps) if n else []

    # -- resolving references to nodes -----------------------------------------------------------

    def targets(self, tier: int, kind: str, key: str, name: str | None = None) -> list[NodeId]:
        """The nodes of ``tier`` that stand for an object: a whole table is its table node and its
        column nodes; one column of a table is that column's node, else the table's."""
        out: list[NodeId] = []
        if kind in ("table", "column"):
            if name is not None:
                if (tier, ("column", key, name)) in self.nodes:
                    out.append((tier, ("column", key, name)))
                elif (tier, ("table", key, None)) in self.nodes:
                    out.append((tier, ("table", key, None)))
                return out
            if (tier, ("table", key, None)) in self.nodes:
                out.append((tier, ("table", key, None)))
            out += [(tier, ("column", key, c)) for c in sorted(self._columns.get((tier, key), ()))]
            return out
        if (tier, (kind, key, name)) in self.nodes:
            out.append((tier, (kind, key, name)))
        return out

    def _source(self, tier: int, d: Dependency) -> list[NodeId]:
        """The node(s) in ``tier`` that carry dependent object ``d``."""
        if d.kind == "column":
            return self.targets(tier, "column", d.key, d.name)
        if d.kind in ("table", "view") or d.name is None:
            return [nid for nid in [(tier, (d.kind, d.key, None))] if nid in self.nodes]
        return [nid for nid in [(tier, (d.kind, d.key, d.name))] if nid in self.nodes]

    def _on(self, tier: int, d: Dependency) -> list[NodeId]:
        if d.on_extension is not None:
            return [nid for nid in [(tier, ("extension", d.on_extension, None))] if nid in self.nodes]
        if d.on_kind in ("table", "column"):
            return self.targets(tier, "table", d.on_key, d.on_name)
        if d.on_kind in ("view", "function", "type", "sequence"):
            return self.targets(tier, d.on_kind, d.on_key)  # on_name: a view's column, same node
        return self.targets(tier, d.on_kind, d.on_key, d.on_name)

    # -- ordering --------------------------------------------------------------------------------

    def ordered_steps(self) -> list[Step]:
        """Every step, tier by tier, each tier in dependency order; numbered, with ``requires``
        filled in."""
        by_tier: dict[int, list[Node]] = defaultdict(list)
        for n in self.nodes.values():
            by_tier[n.tier].append(n)
        out: list[Step] = []
        for tier in sorted(by_tier):
            g: Graph[NodeId] = Graph(sort_key=_ref_text)
            for n in by_tier[tier]:
                g.add(n.id)
            if tier == CREATE:
                self._create_edges(g, by_tier[tier])
            else:
                self._drop_edges(g, tier, by_tier[tier])
            try:
                order = g.order()
            except OrderCycle as e:
                raise ReplicatorError(
                    "the migration plan has a dependency cycle it cannot break: "
                    + " -> ".join(_ref_text(n) for n in e.cycle)) from None
            for nid in order:
                out += self.nodes[nid].steps
        for i, s in enumerate(out, 1):
            s.n = i
        for s in out:
            s.requires = sorted({r.n for r in self.requires.get(id(s), []) if r.n and r.n != s.n})
        return out

    def _create_edges(self, g: Graph[NodeId], nodes: list[Node]) -> None:
        """Master dependencies: a node comes after the nodes of what it uses."""
        for d in [*self.master.dependencies]:
            for src in self._source(CREATE, d):
                g.add(src, self._on(CREATE, d))
        for n in nodes:
            kind, key, name = n.ref
            after: list[NodeId] = []
            if kind in NESTED_KINDS and kind != "column":
                owner = "view" if (CREATE, ("view", key, None)) in self.nodes else "table"
                after += self.targets(CREATE, owner, key)
            elif kind == "column":
                after += [nid for nid in [(CREATE, ("table", key, None))] if nid in self.nodes]
            for need in n.needs:
                after += self.targets(CREATE, *need)
            if n.schema and kind != "schema":
                after += [nid for nid in [(CREATE, ("schema", n.schema, None))] if nid in self.nodes]
            g.add(n.id, [a for a in after if a != n.id])

    def _drop_edges(self, g: Graph[NodeId], tier: int, nodes: list[Node]) -> None:
        """Replica dependencies, reversed: what uses an object is dropped before it."""
        for d in self.replica.dependencies:
            for used in self._on(tier, d):
                g.add(used, self._source(tier, d))
        for n in nodes:
            kind, key, name = n.ref
            if kind in ("table", "view"):
                g.add(n.id, [(tier, (k, key, nm)) for (t, (k, kk, nm)) in self.nodes
                             if t == tier and kk == key and k in NESTED_KINDS])
            elif kind == "column":
                # an index, constraint, trigger or policy of the table may be on the column: dropping
                # the column first would drop it along, and its own DROP would then fail
                g.add(n.id, [(tier, (k, key, nm)) for (t, (k, kk, nm)) in self.nodes
                             if t == tier and kk == key and k in NESTED_KINDS and k != "column"])
            if kind == "schema":
                g.add(n.id, [m.id for m in nodes if m.schema == key and m.id != n.id])
