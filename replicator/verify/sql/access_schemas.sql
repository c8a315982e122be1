-- Schemas the current role could create objects in (or owns).
SELECT n.nspname AS schema,
       has_schema_privilege(n.oid, 'CREATE') AS can_create,
       pg_has_role(n.nspowner, 'USAGE') AS owner
FROM pg_catalog.pg_namespace n
WHERE n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname
