-- Server facts: version number and the database we are looking at.
SELECT current_setting('server_version_num')::int AS server_version,
       current_database() AS database,
       current_setting('search_path') AS search_path,
       -- the session's own search_path (RESET's value), whatever the introspection pinned
       (SELECT s.reset_val FROM pg_catalog.pg_settings AS s WHERE s.name = 'search_path') AS own_search_path
