"""Changes → an ordered, classified migration plan for the replica, with rollback SQL.

    from replicator.plan import build_plan, run_prechecks
    plan = build_plan(master, replica, renames)      # Plan: steps in dependency order
    run_prechecks(plan, replica_conn)                # read-only counts of offending rows
    plan.to_sql()                                    # the reviewable file; plan.rollback_sql()

The package, by concern:

* :mod:`.model`: :class:`Step` (one statement: classification, reason, pre-check, rollback, the
  steps it requires), :class:`Plan` and its rendering;
* :mod:`.objects`: one small class per object kind with its create / drop / comment SQL;
* :mod:`.graph`: steps grouped per object and tier (drop, create, cleanup), ordered over the
  dependencies read from both catalogs with :mod:`replicator.order`;
* :mod:`.builder`: changes → steps, including the objects that must be dropped and recreated
  because something they use changes, and what the compared schemas need outside themselves
  (roles, the ``extensions`` schema, ``auth.users``);
* :mod:`.casts`: column type changes (classification, explicit ``USING`` casts, pre-checks);
* :mod:`.prechecks`: the read-only pre-checks and :func:`run_prechecks`.

Every statement is parsed by sqlglot (when sqlglot cannot parse it, the statement head is used and
the step says so) and classified:

* ``safe``: additive or loss-free;
* ``destructive``: drops of data or objects only on the replica, lossy type changes, enum label
  removal; never applied without ``--allow-destructive`` (nor the steps that need them);
* ``data-dependent``: may fail on the replica's data (SET NOT NULL over NULLs, a new key over
  duplicates, a CHECK over violating rows, a cast that may fail, FK validation over orphans). Such
  steps carry a read-only pre-check (:func:`run_prechecks`) whose result is kept in the plan.
"""

from __future__ import annotations

from ..config import ManagedConfig
from ..diff import Change, diff_schemas, resolve_renames
from ..introspect.models import Schema
from .builder import Builder
from .casts import TypeChange, classify_type_change, split_type
from .model import Classification, Plan, PreCheck, Step, precheck_text
from .prechecks import run_prechecks
from .sqltext import parse_statement


def build_plan(
    master: Schema,
    replica: Schema,
    renames: dict[str, dict[str, str]] | None = None,
    changes: list[Change] | None = None,
    managed: ManagedConfig | None = None,
) -> Plan:
    """The ordered, classified statements that turn ``replica``'s schema into ``master``'s.

    ``managed`` (the config's ``[managed]``) says what may be created outside the compared schemas;
    by default roles, extensions and referenced tables/functions are."""
    if changes is None:
        changes = diff_schemas(master, replica, renames)
    b = Builder(master, replica, changes, resolve_renames(renames, master), managed)
    steps = b.build()
    return Plan(master_database=master.database, replica_database=replica.database, changes=changes,
                steps=steps, unsupported=b.unsupported, notes=b.notes)


__all__ = ["Classification", "Plan", "PreCheck", "Step", "TypeChange", "build_plan", "classify_type_change",
           "parse_statement", "precheck_text", "run_prechecks", "split_type"]
