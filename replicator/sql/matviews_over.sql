-- The materialized views that read the given tables, directly or through views and other materialized
-- views, each with its depth (a view over a view is deeper), so they can be refreshed in order.
WITH RECURSIVE reads (oid, depth) AS (
    SELECT c.oid, 0
    FROM pg_catalog.pg_class c
    WHERE c.oid = ANY (SELECT pg_catalog.to_regclass(t) FROM unnest(%(tables)s::text[]) AS t)
  UNION
    SELECT r.ev_class, reads.depth + 1
    FROM reads
    JOIN pg_catalog.pg_depend d ON d.refobjid = reads.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
                               AND d.classid = 'pg_catalog.pg_rewrite'::regclass
    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> reads.oid AND reads.depth < 32
)
SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) AS matview, max(reads.depth) AS depth
FROM reads
JOIN pg_catalog.pg_class c ON c.oid = reads.oid AND c.relkind = 'm'
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
GROUP BY n.nspname, c.relname
ORDER BY depth, matview
