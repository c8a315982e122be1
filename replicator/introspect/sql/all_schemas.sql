-- Every user schema: not PostgreSQL's own (pg_*, information_schema), not in the excluded list,
-- and not created by an extension.
SELECT n.nspname AS name
FROM pg_catalog.pg_namespace n
WHERE n.nspname <> ALL (%(excluded)s::text[])
  AND n.nspname !~ '^pg_'
  AND n.nspname <> 'information_schema'
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
          AND d.objid = n.oid AND d.deptype = 'e')
ORDER BY n.nspname
