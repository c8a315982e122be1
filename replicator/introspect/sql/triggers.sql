-- User triggers (not the internal ones behind foreign keys) on tables and views.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
       tg.tgname AS name,
       pg_get_triggerdef(tg.oid) AS definition,
       quote_ident(pn.nspname) || '.' || quote_ident(p.proname)
           || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function,
       CASE tg.tgenabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled'
                         WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END AS enabled,
       tg.tgconstraint <> 0 AS is_constraint,
       tg.tgparentid <> 0 AS inherited,
       obj_description(tg.oid, 'pg_trigger') AS comment
FROM pg_catalog.pg_trigger tg
JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE NOT tg.tgisinternal
  AND c.relkind IN ('r', 'p', 'v')
  AND n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname, c.relname, tg.tgname
