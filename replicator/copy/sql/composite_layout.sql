-- Per column of the given tables whose values are composite (a table's row type, a CREATE TYPE ... AS,
-- an array, domain, range or multirange of one; nested ones too): the attribute names of every composite type
-- reached, in attribute order. A composite value travels as a positional list, so the two sides must
-- list their attributes in the same order (migrate appends a new column or attribute at the end).
WITH RECURSIVE cols AS (
    SELECT k AS "table", a.attname::text AS column_name, a.atttypid AS typ
    FROM unnest(%(tables)s::text[]) AS k
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = k::regclass AND a.attnum > 0 AND NOT a.attisdropped
), reached ("table", column_name, typ, depth) AS (
    SELECT "table", column_name, typ, 0 FROM cols
    UNION ALL
    SELECT r."table", r.column_name, n.typ, r.depth + 1
    FROM reached AS r
    JOIN pg_catalog.pg_type AS t ON t.oid = r.typ
    CROSS JOIN LATERAL (
        SELECT CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem
                    WHEN t.typtype = 'd' THEN t.typbasetype END AS typ
        UNION ALL
        SELECT rg.rngsubtype FROM pg_catalog.pg_range AS rg WHERE rg.rngtypid = t.oid
        UNION ALL
        -- (rngmultitypid through JSON: the column exists from PostgreSQL 14 on)
        SELECT rg.rngtypid FROM pg_catalog.pg_range AS rg
        WHERE (pg_catalog.to_jsonb(rg) ->> 'rngmultitypid')::oid = t.oid
        UNION ALL
        SELECT a.atttypid FROM pg_catalog.pg_attribute AS a
        WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ) AS n
    WHERE n.typ IS NOT NULL AND r.depth < 10
), layouts AS (
    SELECT r."table", r.column_name,
           pg_catalog.quote_ident(ns.nspname) || '.' || pg_catalog.quote_ident(t.typname) || '(' || (
               SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute AS a
               WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ')' AS layout
    FROM reached AS r
    JOIN pg_catalog.pg_type AS t ON t.oid = r.typ AND t.typtype = 'c'
    JOIN pg_catalog.pg_namespace AS ns ON ns.oid = t.typnamespace
)
SELECT "table", column_name, pg_catalog.string_agg(DISTINCT layout, ' ' ORDER BY layout) AS layout
FROM layouts
GROUP BY "table", column_name
