-- Domains: base type, NOT NULL, default, collation and their CHECK constraints.
SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname) AS key,
       n.nspname AS schema_name,
       t.typname AS name,
       CASE WHEN bt.typnamespace = 'pg_catalog'::regnamespace
                 OR starts_with(format_type(t.typbasetype, t.typtypmod), quote_ident(btn.nspname) || '.')
            THEN format_type(t.typbasetype, t.typtypmod)
            ELSE quote_ident(btn.nspname) || '.' || format_type(t.typbasetype, t.typtypmod) END AS base_type,
       t.typnotnull AS not_null,
       t.typdefault AS "default",
       CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN (
           SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
           FROM pg_catalog.pg_collation co
           JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
           WHERE co.oid = t.typcollation) END AS collation,
       coalesce((SELECT json_agg(json_build_object(
                        'name', con.conname,
                        'definition', pg_get_constraintdef(con.oid),
                        'validated', con.convalidated) ORDER BY con.conname)
                 FROM pg_catalog.pg_constraint con
                 WHERE con.contypid = t.oid AND con.contype = 'c'), '[]'::json) AS constraints,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
JOIN pg_catalog.pg_namespace btn ON btn.oid = bt.typnamespace
WHERE t.typtype = 'd'
  AND n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_type'::regclass
          AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY n.nspname, t.typname
