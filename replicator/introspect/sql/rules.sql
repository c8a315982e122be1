-- Rewrite rules (CREATE RULE) on tables and views; not a view's own _RETURN rule.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
       r.rulename AS name,
       pg_catalog.pg_get_ruledef(r.oid) AS definition,
       CASE r.ev_enabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                         WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END AS enabled,
       obj_description(r.oid, 'pg_rewrite') AS comment
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE r.rulename <> '_RETURN'
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname, c.relname, r.rulename
