-- Extensions the server could install (control files present), with every version it ships.
SELECT v.name, array_agg(v.version::text ORDER BY v.version) AS versions
FROM pg_catalog.pg_available_extension_versions v
GROUP BY v.name
ORDER BY v.name
