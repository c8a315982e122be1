"""`replicator init`: a commented starter `replicator.toml`, written from what the master holds.

It lists the tables found (rows, key, what they reference), sets a default policy, gives tables
without a usable key the policy that works for them (`mirror`: copied as a multiset of rows, only
the difference written), proposes masks for columns that look like personal data, commented so that
a person decides (by column name and type: emails, phone numbers, names, addresses, dates of birth,
identity and card numbers, IP addresses, password hashes, tokens and secrets), notes the managed
schemas a Supabase master has and what the compared tables use there, and, when a replica is given,
suggests renames where a column only on the replica and one only on the master have the same type
(the dropped + added pair `analyze` would otherwise plan), also commented.

Everything is read through the guarded, read-only master connection (and a plain replica one).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .introspect.core import MANAGED_SCHEMAS
from .introspect.models import Column, Schema, Table

DEFAULT_POLICY = "master-wins"

_TEXTLIKE = re.compile(r"^(text|character varying|varchar|character|char|bpchar|citext)(\(\d+\))?$")
_PERSON_TABLES = re.compile(r"(^|_)(users?|profiles?|people|persons?|customers?|contacts?|leads?|members?|employees?|"
                            r"patients?|students?|guests?|accounts?|subscribers?|candidates?|applicants?|staff)$")


@dataclass
class Proposal:
    """A mask proposed for a column: the rule (TOML value) and why."""

    column: str
    rule: str  # TOML text: "email", "hash", { value = "" } ...
    why: str


# (what it looks like, name pattern, needs a text type)
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("password hash", re.compile(r"pass(word)?(_?hash(ed)?)?$|passwd|pwd_?hash|^encrypted_password$|^hashed_password$")),
    ("token or secret", re.compile(r"token|secret|api_?key|access_?key|private_?key|(^|_)otp($|_)|(^|_)nonce($|_)|"
                                   r"(^|_)salt($|_)|recovery_code")),
    ("email address", re.compile(r"e_?mail")),
    ("phone number", re.compile(r"phone|mobile|msisdn|(^|_)tel(ephone)?($|_)|(^|_)fax($|_)|whatsapp|"
                                r"(sender|receiver|recipient|caller|callee)_number")),
    ("identity or card number", re.compile(r"(^|_)ssn($|_)|social_security|national_id|passport|tax_?id|vat_number|"
                                           r"iban|bank_account|card_number|credit_card|(^|_)cc_number")),
    ("date of birth", re.compile(r"birth|(^|_)dob($|_)")),
    ("IP address", re.compile(r"(^|_)ip(_address)?($|_)|ip_addr|remote_addr")),
    ("address", re.compile(r"address|street|addr_line|(^|_)city($|_)|post_?code|postal_code|(^|_)zip(_?code)?($|_)")),
    ("person's name", re.compile(r"first_?name|last_?name|full_?name|surname|given_name|family_name|middle_name|"
                                 r"maiden_name|display_name|nick_?name")),
]


def _unique(t: Table, column: str) -> bool:
    if t.primary_key == [column]:
        return True
    return any(i.unique and [c for c in i.columns] == [column] for i in t.indexes.values())


def mask_proposal(t: Table, col: Column) -> Proposal | None:
    """A mask for a column that looks like personal data, or None."""
    name = re.sub(r"[^a-z0-9]+", "_", col.name.lower()).strip("_")  # "E-Mail", "Mobile Phone" as words
    if col.generated:
        return None
    kind = next((k for k, rx in _KINDS if rx.search(name)), None)
    if kind is None and name == "name" and _PERSON_TABLES.search(t.name.lower()):
        kind = "person's name"
    if kind is None and col.type in ("inet", "cidr"):
        kind = "IP address"
    if kind is None:
        return None
    text = bool(_TEXTLIKE.match(col.type))
    blank = '"null"' if col.nullable else '{ value = "" }'
    unique = _unique(t, col.name)
    if kind in ("password hash", "token or secret"):
        return Proposal(col.name, blank if text else '"null"', kind) if text or col.nullable else None
    if kind == "email address" and text:
        return Proposal(col.name, '"hash"' if unique else '"email"',
                        kind + ("; unique, so a keyed hash keeps it unique" if unique else ""))
    if kind == "phone number" and text:
        if unique:
            return Proposal(col.name, '"hash"', kind + '; unique: "hash" keeps it unique ("phone" gives '
                                               '+44 7700 9xxxxx, which may collide)')
        return Proposal(col.name, '"phone"', kind)
    if text:
        return Proposal(col.name, '"hash"', kind + " (keyed hash: equal values stay equal)")
    if col.type in ("uuid", "smallint", "integer", "bigint"):
        return Proposal(col.name, '"hash"', kind)
    return Proposal(col.name, '"null"', kind) if col.nullable else None


@dataclass
class Rename:
    table: str
    replica_column: str
    master_column: str
    type: str
    others: list[str] = field(default_factory=list)


def rename_suggestions(master: Schema, replica: Schema) -> list[Rename]:
    """Columns only on the replica with a column of the same type only on the master (the dropped +
    added pair `analyze` would plan), the closest name first."""
    out = []
    for key, mt in master.tables.items():
        rt = replica.tables.get(key)
        if rt is None or mt.partition_of:
            continue
        only_m = [c for c in mt.columns.values() if c.name not in rt.columns]
        only_r = [c for c in rt.columns.values() if c.name not in mt.columns]
        taken: set[str] = set()
        for rc in only_r:
            same = [mc.name for mc in only_m if mc.type == rc.type and mc.name not in taken]
            if not same:
                continue
            same.sort(key=lambda n: -difflib.SequenceMatcher(None, rc.name, n).ratio())
            taken.add(same[0])
            out.append(Rename(key, rc.name, same[0], rc.type, same[1:]))
    return out


def toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


def toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def config_key(t: Table) -> str:
    """The table's key in ``[tables.<key>]``: its name, schema-qualified outside public."""
    return toml_key(t.name) if t.schema_name == "public" else toml_key(f"{t.schema_name}.{t.name}")


@dataclass
class Starter:
    text: str
    tables: int
    keyless: list[str]
    masks: int
    renames: int
    managed: list[str]


def starter_config(master: Schema, replica: Schema | None, *, master_address: str, replica_address: str | None,
                   managed: list[str], schemas: list[str]) -> Starter:
    """The text of a starter replicator.toml (see the module's docstring)."""
    now = datetime.now(timezone.utc)
    roots = [t for t in master.tables.values() if not t.partition_of]
    renames = rename_suggestions(master, replica) if replica is not None else []
    by_table: dict[str, list[Rename]] = {}
    for r in renames:
        by_table.setdefault(r.table, []).append(r)
    L: list[str] = []
    w = L.append
    w(f"# replicator.toml: written by `replicator init` on {now:%Y-%m-%d %H:%M} UTC from the master")
    w(f"# {master_address}" + (f" and the replica {replica_address}" if replica_address else "") + ".")
    w("# Review it (masks and renames are proposed commented out: you decide), then run `replicator sync`.")
    w("#")
    w("# Connections: pass --master / --replica, or set REPLICATOR_MASTER_URL / REPLICATOR_REPLICA_URL.")
    w("# Keep passwords in ~/.pgpass or the environment, never in this file (commit this file: CI uses it).")
    w("")
    w(f"schemas = [{', '.join(toml_str(s) for s in schemas)}]")
    w("")
    w("# Which tables every command works on (globs: `table`, `schema.table`, `lead*`); default: all.")
    w("# include = [\"public.*\"]")
    w("# exclude = [\"*_audit_log\"]")
    w("")
    w("[copy]")
    w("# What copy and sync do with a row whose key is already on the replica, for every table without a")
    w("# policy of its own. \"master-wins\": the master's values win, the replica's own rows are kept;")
    w("# \"mirror\": the replica becomes equal to the master (rows the master lacks are deleted);")
    w("# \"keep-replica\": rows on both sides are left as the replica has them.")
    w(f"policy = {toml_str(DEFAULT_POLICY)}")
    w("")
    w("# A slice of production instead of all of it: the rows chosen, every row they reference, and with")
    w("# `referencing` the rows that reference them (see the README, Subsets).")
    w("# [subset]")
    w("# start = [\"clients: id = 2\"]")
    w("# referencing = true")
    w("")
    if managed:
        w(f"# Managed schemas on the master: {', '.join(managed)} (a Supabase project's platform). They are not")
        w("# compared; what the compared tables use there is created on a replica that lacks it ([managed]),")
        w("# and the rows of managed tables they reference (auth.users) are copied with password hashes and")
        w("# tokens blanked.")
        used = sorted(master.external.tables)
        if used:
            w(f"# Used by the compared tables: {', '.join(used)}.")
        w("# [managed]")
        w("# create_roles = true")
        w("# create_extensions = true")
        w("# create_referenced = true")
        w("")
    w(f"# Tables found on the master ({len(roots)}): rows, key, referenced tables.")
    width = max((len(f"{t.schema_name}.{t.name}") for t in roots), default=10)
    keyless = []
    for t in sorted(roots, key=lambda t: (t.schema_name, t.name)):
        key = t.key_columns()
        if not key:
            keyless.append(f"{t.schema_name}.{t.name}")
        rows = master.row_count(t.key)
        refs = sorted({fk.referenced_table or "" for fk in t.foreign_keys} - {t.key, ""})
        w(f"#   {f'{t.schema_name}.{t.name}':<{width}}  {'?' if rows is None else f'{rows:,}':>9} rows  "
          + (f"key ({', '.join(key)})" if key else "NO KEY")
          + (f"  -> {', '.join(refs)}" if refs else "")
          + (f"  (partitioned: {len(master.partitions_of(t.key))} partitions)" if t.kind == "partitioned table" else ""))
    if replica is not None:
        only_replica = sorted(f"{t.schema_name}.{t.name}" for k, t in replica.tables.items()
                              if k not in master.tables and not t.partition_of)
        if only_replica:
            w(f"# Only on the replica: {', '.join(only_replica)} (dropped by migrate/sync only with --allow-destructive).")
    masks = 0
    w("")
    w("# Per table ([tables.<name>]: policy, where, renames, mask, cursor, batch_size; see the README).")
    w("# Proposals are commented out: uncomment what applies.")
    w("#  - mask: columns that look like personal data, masked in the master's SELECT so the real values")
    w("#    never reach the replica (\"hash\", \"email\" and \"phone\" need REPLICATOR_MASK_KEY);")
    w("#  - renames: a column only on the replica and one of the same type only on the master; if they")
    w("#    are the same column, migrate renames it (keeping its values) instead of dropping one and")
    w("#    adding the other.")
    for t in sorted(roots, key=lambda t: (t.schema_name, t.name)):
        key = config_key(t)
        proposals = [p for p in (mask_proposal(t, c) for c in t.columns.values()) if p is not None]
        table_renames = by_table.get(t.key, [])
        is_keyless = not t.key_columns()
        if not (proposals or table_renames or is_keyless):
            continue
        w("")
        w(f"# --- {t.schema_name}.{t.name}")
        if is_keyless:
            w(f"[tables.{key}]")
            w("# No primary key or NOT NULL unique key: copied as a multiset of rows; \"mirror\" makes it equal")
            w("# to the master and writes only the rows that differ.")
            w('policy = "mirror"')
        if table_renames:
            w(f"# [tables.{key}.renames]")
            for r in table_renames:
                alt = f"; also possible: {', '.join(r.others)}" if r.others else ""
                w(f"# {toml_key(r.replica_column)} = {toml_str(r.master_column)}   # replica column = master column, "
                  f"both {r.type}{alt}")
        if proposals:
            masks += len(proposals)
            keycols = set(t.key_columns() or [])
            w(f"# [tables.{key}.mask]")
            for p in proposals:
                note = "; part of the key: masking it rules out mirror" if p.column in keycols else ""
                w(f"# {toml_key(p.column)} = {p.rule}   # {p.why}{note}")
    w("")
    return Starter("\n".join(L), len(roots), keyless, masks, len(renames), managed)


__all__ = ["Starter", "starter_config", "mask_proposal", "rename_suggestions", "DEFAULT_POLICY", "MANAGED_SCHEMAS"]
