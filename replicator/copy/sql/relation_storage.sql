-- Per table: its oid, relfilenode and attribute count, and those of every partition under it, as one
-- string. A baseline (replicator.copy.baseline) is only trusted while this string is unchanged:
-- TRUNCATE, VACUUM FULL, CLUSTER, a rewriting ALTER TABLE, a dump and restore all give new storage;
-- a column dropped and added again under the same name changes every row's value without a rewrite,
-- and takes a new attribute number (relnatts counts dropped columns too).
-- (pg_partition_tree lists nothing for a table that is not partitioned, hence the UNION.)
SELECT t AS "table",
       (SELECT string_agg(r.relid::oid::text || ':' || coalesce(pg_catalog.pg_relation_filenode(r.relid)::text, '-')
                          || ':' || c.relnatts, ',' ORDER BY r.relid::oid)
        FROM (SELECT t::regclass AS relid
              UNION SELECT p.relid FROM pg_catalog.pg_partition_tree(t::regclass) AS p) AS r
        JOIN pg_catalog.pg_class AS c ON c.oid = r.relid) AS storage
FROM unnest(%(tables)s::text[]) AS t
