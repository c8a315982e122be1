-- What exists outside the compared schemas (and outside PostgreSQL's own): schemas, tables, views,
-- functions, types and triggers, names only, extension members left out. Enough to tell whether
-- an object the compared schemas use elsewhere (auth.users, auth.uid(), the `extensions` schema) is
-- already there.
WITH outside AS (
    SELECT n.oid, n.nspname
    FROM pg_catalog.pg_namespace n
    WHERE n.nspname <> ALL (%(schemas)s::text[])
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
), members AS (
    SELECT e.classid, e.objid FROM pg_catalog.pg_depend e WHERE e.deptype = 'e'
)
SELECT 'schema' AS kind, quote_ident(o.nspname) AS key, NULL::text AS name
FROM outside o
WHERE NOT EXISTS (SELECT 1 FROM members m
                  WHERE m.classid = 'pg_catalog.pg_namespace'::regclass AND m.objid = o.oid)
UNION ALL
SELECT CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END,
       quote_ident(o.nspname) || '.' || quote_ident(c.relname), NULL
FROM pg_catalog.pg_class c
JOIN outside o ON o.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_class'::regclass AND m.objid = c.oid)
UNION ALL
SELECT 'function',
       quote_ident(o.nspname) || '.' || quote_ident(p.proname)
           || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL
FROM pg_catalog.pg_proc p
JOIN outside o ON o.oid = p.pronamespace
WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_proc'::regclass AND m.objid = p.oid)
UNION ALL
SELECT 'type', quote_ident(o.nspname) || '.' || quote_ident(t.typname), NULL
FROM pg_catalog.pg_type t
JOIN outside o ON o.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
WHERE (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_type'::regclass AND m.objid = t.oid)
UNION ALL
SELECT 'trigger', quote_ident(o.nspname) || '.' || quote_ident(c.relname), tg.tgname
FROM pg_catalog.pg_trigger tg
JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
JOIN outside o ON o.oid = c.relnamespace
WHERE NOT tg.tgisinternal
ORDER BY 1, 2, 3
