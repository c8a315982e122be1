-- Per relation of the replicated schemas: what the current role could do besides reading, and
-- whether row-level security is active for it (rows silently filtered out of every SELECT).
SELECT n.nspname || '.' || c.relname AS relation,
       CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
       pg_has_role(c.relowner, 'USAGE') AS owner,
       CASE WHEN c.relkind = 'S' THEN false ELSE has_any_column_privilege(c.oid, 'INSERT') END AS can_insert,
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'UPDATE')
            ELSE has_any_column_privilege(c.oid, 'UPDATE') END AS can_update,
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE')
            ELSE has_table_privilege(c.oid, 'DELETE') END AS can_delete_or_nextval,
       CASE WHEN c.relkind = 'S' THEN false ELSE has_table_privilege(c.oid, 'TRUNCATE') END AS can_truncate,
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT')
            ELSE has_table_privilege(c.oid, 'SELECT') END AS can_select,
       c.relrowsecurity AS rls_enabled,
       c.relforcerowsecurity AS rls_forced,
       CASE WHEN c.relkind = 'S' THEN false ELSE row_security_active(c.oid) END AS rls_active,
       (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) AS policies
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY (%(schemas)s::text[])
  AND c.relkind IN ('r', 'p', 'S')
ORDER BY n.nspname, c.relname
