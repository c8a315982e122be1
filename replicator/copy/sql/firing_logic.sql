-- User triggers and rules on the given replica tables (and their partitions) that would fire while a
-- copy writes, given the session_replication_role the copy runs with: under `replica`, only those
-- enabled ALWAYS or REPLICA; under `origin`, those enabled (ORIGIN) or ALWAYS. Internal triggers
-- (foreign keys) are not listed. `owned`: the copy's role may ALTER the table (disable/enable them).
WITH rels AS (
    -- the table itself, and its partitions (pg_partition_tree lists nothing for a plain table)
    SELECT r.root, r.root::regclass AS relid FROM unnest(%(tables)s::text[]) AS r(root)
    UNION
    SELECT r.root, t.relid
    FROM unnest(%(tables)s::text[]) AS r(root)
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(r.root::regclass) AS t
)
SELECT rels.root, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
       'trigger' AS kind, tg.tgname AS name, tg.tgenabled::text AS state,
       pg_has_role(c.relowner, 'USAGE') AS owned
FROM rels
JOIN pg_catalog.pg_class c ON c.oid = rels.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = c.oid
WHERE NOT tg.tgisinternal
  AND tg.tgparentid = 0  -- a clone of a partitioned table's trigger is switched through its parent
  AND tg.tgenabled = ANY (%(states)s::"char"[])
UNION ALL
SELECT rels.root, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       'rule', rw.rulename, rw.ev_enabled::text, pg_has_role(c.relowner, 'USAGE')
FROM rels
JOIN pg_catalog.pg_class c ON c.oid = rels.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = c.oid
WHERE rw.rulename <> '_RETURN'
  AND rw.ev_enabled = ANY (%(states)s::"char"[])
ORDER BY 1, 2, 3, 4
