-- The foreign keys a copy dropped for a cycle or a self-reference and has not re-added yet, each with
-- the label its copy lock and checkpoint use: schema.name unquoted, of the partition tree's root (the
-- record keeps the quoted key; a key of a partition is copied with its root).
SELECT coalesce(rn.nspname || '.' || r.relname, d.table_name) AS label, d.constraint_name
FROM _replicator.dropped_constraints d
LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(d.table_name)
LEFT JOIN pg_catalog.pg_class r ON r.oid = coalesce(pg_catalog.pg_partition_root(c.oid), c.oid)
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
ORDER BY 1, 2
