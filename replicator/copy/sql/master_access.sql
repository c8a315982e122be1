-- Per master table: may the reading role SELECT it, and would row-level security hide rows from it.
SELECT t AS "table",
       has_table_privilege(t::regclass, 'SELECT') AS can_select,
       row_security_active(t::regclass) AS rls_active
FROM unnest(%(tables)s::text[]) AS t
