-- How this database sorts text by default: its pg_database row as JSON, so the columns that exist on
-- this server version are all there (datlocprovider and daticulocale from 15, datlocale from 17,
-- daticurules from 16, datcollversion from 15). collation.py keeps the ones that decide the order.
SELECT pg_catalog.to_json(d)::text AS db
FROM pg_catalog.pg_database d
WHERE d.datname = pg_catalog.current_database()
