-- Per replica table: does it hold rows, and may the copy's role write it the ways policies need.
SELECT t AS "table",
       has_table_privilege(t::regclass, 'INSERT') AS can_insert,
       has_table_privilege(t::regclass, 'UPDATE') AS can_update,
       has_table_privilege(t::regclass, 'DELETE') AS can_delete,
       has_table_privilege(t::regclass, 'TRUNCATE') AS can_truncate,
       pg_has_role((SELECT relowner FROM pg_catalog.pg_class WHERE oid = t::regclass), 'USAGE') AS owned,
       -- row-level security that applies to this role: COPY FROM refuses such a table, reads miss rows
       pg_catalog.row_security_active(t::regclass) AS rls_active
FROM unnest(%(tables)s::text[]) AS t
