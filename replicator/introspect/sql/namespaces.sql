-- The selected schemas that exist, with their comments.
SELECT quote_ident(n.nspname) AS key,
       n.nspname AS name,
       obj_description(n.oid, 'pg_namespace') AS comment
FROM pg_catalog.pg_namespace n
WHERE n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname
