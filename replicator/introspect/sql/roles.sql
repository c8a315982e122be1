-- Roles of the cluster (roles are cluster-wide), without PostgreSQL's predefined pg_* roles.
SELECT r.rolname AS name,
       r.rolcanlogin AS login,
       r.rolinherit AS inherit,
       r.rolbypassrls AS bypassrls,
       r.rolsuper AS superuser
FROM pg_catalog.pg_roles r
WHERE r.rolname !~ '^pg_'
ORDER BY r.rolname
