-- Is a session carrying this application_name connected to this very database? The other side set it
-- a moment ago: found means both URLs lead to the same database, whatever their spelling.
SELECT count(*) FROM pg_catalog.pg_stat_activity
WHERE application_name = %s AND datname = pg_catalog.current_database()
