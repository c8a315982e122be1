-- Ordinary and partitioned tables (including partitions), not owned by an extension.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS key,
       n.nspname AS schema_name,
       c.relname AS name,
       CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END AS kind,
       c.relpersistence = 'u' AS unlogged,
       c.relrowsecurity AS rls_enabled,
       -- what logical decoding (Supabase Realtime) sends of an updated or deleted row's old version;
       -- an identity index dropped since behaves as NOTHING
       CASE c.relreplident WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full'
            WHEN 'i' THEN coalesce((SELECT 'index ' || quote_ident(ic.relname) FROM pg_catalog.pg_index x
                                    JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
                                    WHERE x.indrelid = c.oid AND x.indisreplident), 'nothing')
            ELSE 'default' END AS replica_identity,
       c.relforcerowsecurity AS rls_forced,
       obj_description(c.oid, 'pg_class') AS comment,
       coalesce(c.reloptions, '{}'::text[]) AS options,
       CASE WHEN c.relispartition THEN (
           SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.relname)
           FROM pg_catalog.pg_inherits i
           JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
           JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
           WHERE i.inhrelid = c.oid) END AS partition_of,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN '{}'::text[] ELSE ARRAY(
           SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.relname)
           FROM pg_catalog.pg_inherits i
           JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
           JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
           WHERE i.inhrelid = c.oid
           ORDER BY i.inhseqno) END AS inherits,
       c.reltuples::float8 AS reltuples,
       -- count(*) would fail without SELECT, and under active row-level security it would only
       -- count the visible rows: such tables keep the planner estimate.
       has_table_privilege(c.oid, 'SELECT') AND NOT row_security_active(c.oid) AS countable
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::regclass
          AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname
