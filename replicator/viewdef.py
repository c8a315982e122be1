"""View definitions compared across PostgreSQL major versions.

`pg_get_viewdef` qualifies a column with its relation whenever the query level has more than one
range-table entry. Up to PostgreSQL 15 a view's stored query always carried two hidden entries (OLD
and NEW), so every column of its top level was qualified (`SELECT t.id FROM public.t`); from 16 on
they are gone, and a top level reading one relation prints `SELECT id FROM public.t`. The same view
then reads differently on a 15 master and a 16 replica. Nested levels (sublinks, subqueries) are
qualified alike by both.

`canonical` rewrites a definition to the qualified form of its top level when that level reads a
single relation (table, subquery, function or CTE), using sqlglot's scopes; comparison only, never
executed. A definition sqlglot cannot parse is returned as it is (compared as text).
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)
def canonical(definition: str) -> str:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.scope import build_scope

    try:
        tree = sqlglot.parse_one(definition.strip().rstrip(";"), read="postgres")
        scope = build_scope(tree)
        if scope is None or len(scope.sources) != 1 or not isinstance(tree, exp.Select) or tree.args.get("joins"):
            return definition
        source = tree.args["from_" if "from_" in tree.args else "from"].this  # the one relation read
        alias = source.args.get("alias")
        qualifier = alias.this if alias is not None else source.this  # as written: quoted or not
        if not isinstance(qualifier, exp.Identifier):
            return definition
        # every column of the top level (ORDER BY included, which scopes leave out when a column
        # shares an output's name), none of a nested query's
        for column in list(tree.find_all(exp.Column)):
            if not column.table and isinstance(column.this, exp.Identifier) \
                    and column.find_ancestor(exp.Select, exp.Subquery) is tree:
                column.set("table", qualifier.copy())
        return tree.sql(dialect="postgres")
    except (SqlglotError, ValueError, KeyError, AttributeError, TypeError):  # a comparison aid: compare the text
        return definition


def same(master: str | None, replica: str | None) -> bool:
    """Whether two definitions of a view are the same query, whichever release deparsed them."""
    if master == replica:
        return True
    if master is None or replica is None:
        return False
    return canonical(master) == canonical(replica)
