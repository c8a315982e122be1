-- The cluster's unique id, written by initdb and shared by every physical copy (standbys, base
-- backups). Executable by any role on stock PostgreSQL; some hosted services revoke it.
SELECT system_identifier::text FROM pg_catalog.pg_control_system()
