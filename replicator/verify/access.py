"""Master access audit: could the credentials this run used write to the master, and could
row-level security hide master rows from them?

Reading is the only thing replicator does on the master, and the guard enforces it per statement;
this check says what the credentials would allow if something else used them. Write power is a
warning by default (`--require-readonly-role` makes it a failure). Row-level security that is active
for the reading role is a failure: every SELECT is silently filtered, so a copy and its verification
would both agree on an incomplete table.
"""

from __future__ import annotations


from psycopg.rows import dict_row

from ..connect import batch
from .context import Sides, load_sql
from .model import VerifyReport

_EXAMPLES = 10


def check_master_access(report: VerifyReport, sides: Sides, schemas: list[str], tables: list[str],
                        require_readonly: bool) -> None:
    params = {"schemas": schemas}
    (role, *_), rels, nsps = batch(sides.master, [(load_sql(n), params) for n in ("access_role", "access_tables",
                                                                             "access_schemas")], row_factory=dict_row)

    writable = [r for r in rels if r["kind"] == "table"
                and (r["can_insert"] or r["can_update"] or r["can_delete_or_nextval"] or r["can_truncate"])]
    owned = [r["relation"] for r in rels if r["owner"]]
    seq_writable = [r["relation"] for r in rels if r["kind"] == "sequence"
                    and (r["can_update"] or r["can_delete_or_nextval"])]
    create_in = [n["schema"] for n in nsps if n["can_create"] or n["owner"]]

    powers: list[str] = []
    if role["superuser"]:
        powers.append("is a superuser")
    if role["createrole"]:
        powers.append("has CREATEROLE (can grant itself write roles)")
    if role["writing_roles"]:
        powers.append(f"is a member of roles that can write: {', '.join(role['writing_roles'])}")
    if writable:
        powers.append(f"has INSERT/UPDATE/DELETE/TRUNCATE on {len(writable)} table(s)")
    if owned:
        powers.append(f"owns {len(owned)} relation(s)")
    if seq_writable:
        powers.append(f"can advance or set {len(seq_writable)} sequence(s)")
    if create_in:
        powers.append(f"has CREATE on schema(s) {', '.join(create_in)}")
    if role["can_create_schema"]:
        powers.append("has CREATE on the database")

    privileges = [
        {"table": r["relation"], "privileges": [p for p, k in (("INSERT", "can_insert"), ("UPDATE", "can_update"),
                                                             ("DELETE", "can_delete_or_nextval"),
                                                             ("TRUNCATE", "can_truncate")) if r[k]]}
        for r in writable[:_EXAMPLES]
    ]
    read_only_setting = any(s.lower().replace(" ", "") in ("default_transaction_read_only=on",
                                                          "default_transaction_read_only=true")
                            for s in role["role_settings"])
    evidence = dict(
        role=role["role"], superuser=role["superuser"], bypassrls=role["bypassrls"],
        createrole=role["createrole"], createdb=role["createdb"], replication=role["replication"],
        member_of=role["member_of"], writing_roles=role["writing_roles"],
        writable_tables=len(writable), writable_examples=privileges, owned_relations=owned[:_EXAMPLES],
        writable_sequences=seq_writable[:_EXAMPLES], create_on_schemas=create_in,
        create_on_database=role["can_create_schema"], role_settings=role["role_settings"],
        role_default_read_only=read_only_setting, powers=powers,
    )
    if powers:
        status = "fail" if require_readonly else "warn"
        summary = f"role {role['role']} could write: " + "; ".join(powers)
        if not require_readonly:
            summary += " (a failure with --require-readonly-role)"
    else:
        status = "pass"
        summary = f"role {role['role']} can only read the replicated schemas"
        if not read_only_setting:
            summary += " (consider ALTER ROLE … SET default_transaction_read_only = on)"
    report.add("master_access", status, summary, None, **evidence)

    # Row-level security, for the tables this run verifies.
    wanted = set(tables)
    scoped = [r for r in rels if r["kind"] == "table" and r["relation"] in wanted]
    filtered = [r["relation"] for r in scoped if r["rls_active"]]
    unreadable = [r["relation"] for r in scoped if not r["can_select"]]
    rls_enabled = [r["relation"] for r in scoped if r["rls_enabled"]]
    ev = dict(role=role["role"], bypassrls=role["bypassrls"], superuser=role["superuser"],
              row_security=role["row_security"], rls_enabled_tables=rls_enabled,
              rls_filtered_tables=filtered, unreadable_tables=unreadable)
    if filtered or unreadable:
        parts = []
        if filtered:
            how = "filtered" if role["row_security"] == "on" else "refused (row_security=off)"
            parts.append(f"row-level security is active for role {role['role']} on {len(filtered)} table(s), "
                         f"reads are {how}: {', '.join(filtered[:_EXAMPLES])}")
        if unreadable:
            parts.append(f"no SELECT on {', '.join(unreadable[:_EXAMPLES])}")
        report.add("master_rls", "fail", "; ".join(parts)
                   + " (give the role BYPASSRLS, or read as the table owner)", None, **ev)
    elif rls_enabled:
        why = "superuser" if role["superuser"] else "BYPASSRLS" if role["bypassrls"] else "table owner"
        report.add("master_rls", "pass", f"{len(rls_enabled)} table(s) have RLS enabled; the role sees every row ({why})",
                   None, **ev)
    else:
        report.add("master_rls", "pass", "no verified table has row-level security enabled", None, **ev)
