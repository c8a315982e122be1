-- Installed extensions (database-wide, whatever schema they live in).
SELECT e.extname AS name,
       n.nspname AS schema_name,
       e.extversion AS version
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
ORDER BY e.extname
