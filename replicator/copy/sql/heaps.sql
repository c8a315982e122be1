-- Per table: the heaps its rows are in (the table itself, or the leaf partitions of a partitioned
-- table), with their size in pages and the planner's rows per page (NULL when never vacuumed or
-- analyzed): what a copy into an empty table cuts into page ranges. Read with the pre-flight's other
-- master questions, one round trip for the whole run; a size read early is safe, because the last
-- range of each heap is open-ended.
-- (pg_partition_tree lists nothing for a table that is not partitioned, hence the OR.)
SELECT t AS "table", n.nspname AS schema_name, c.relname AS name,
       pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
       CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN c.reltuples / c.relpages END AS rows_per_page
FROM unnest(%(tables)s::text[]) AS t
JOIN pg_catalog.pg_class c
  ON c.oid = t::regclass OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree(t::regclass))
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
ORDER BY 1, 2, 3
