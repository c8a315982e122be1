-- Collations created in the compared schemas (CREATE COLLATION), not owned by an extension. The
-- catalog row goes whole as JSON: its columns differ across versions (ICU locale in colliculocale
-- on PostgreSQL 15-16, colllocale from 17; ICU rules from 16).
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.collname) AS key,
       n.nspname AS schema_name,
       c.collname AS name,
       pg_catalog.to_jsonb(c) AS catalog,
       obj_description(c.oid, 'pg_collation') AS comment
FROM pg_catalog.pg_collation c
JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
WHERE n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_collation'::regclass
          AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.collname
