-- Server facts: version number and the database we are looking at.
SELECT current_setting('server_version_num')::int AS server_version,
       current_database() AS database,
       current_setting('search_path') AS search_path
