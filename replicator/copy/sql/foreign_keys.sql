-- Validated foreign keys that involve the given replica tables, as the child (the table the key is
-- declared on, or a partition of it) or as the parent: what a copy with the replica's triggers
-- switched off must check afterwards. Only where declared (not the clones on partitions).
WITH involved AS (
    -- the tables, and their partitions (pg_partition_tree lists nothing for a plain table)
    SELECT r.t::regclass AS relid FROM unnest(%(tables)s::text[]) AS r(t)
    UNION
    SELECT p.relid FROM unnest(%(tables)s::text[]) AS r(t), pg_catalog.pg_partition_tree(r.t::regclass) AS p
)
SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.relname) AS child,
       cn.nspname AS child_schema, c.relname AS child_name,
       quote_ident(pn.nspname) || '.' || quote_ident(p.relname) AS parent,
       pn.nspname AS parent_schema, p.relname AS parent_name,
       con.conname AS name,
       con.confmatchtype = 'f' AS match_full,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS parent_columns
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = con.confrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE con.contype = 'f' AND con.convalidated AND con.conparentid = 0
  AND (con.conrelid IN (SELECT relid FROM involved) OR con.confrelid IN (SELECT relid FROM involved))
ORDER BY 1, 7
