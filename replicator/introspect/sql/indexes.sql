-- Indexes of tables and materialized views; those backing a constraint name it.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
       ic.relname AS name,
       pg_get_indexdef(x.indexrelid) AS definition,
       x.indisunique AS "unique",
       x.indisprimary AS "primary",
       am.amname AS method,
       pg_get_expr(x.indpred, x.indrelid) AS predicate,
       ARRAY(SELECT CASE WHEN k.attnum = 0 THEN NULL ELSE a.attname END
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= x.indnkeyatts
             ORDER BY k.ord) AS columns,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k.ord::int, true)
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             WHERE k.ord <= x.indnkeyatts AND k.attnum = 0
             ORDER BY k.ord) AS expressions,
       ARRAY(SELECT a.attname
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             WHERE k.ord > x.indnkeyatts
             ORDER BY k.ord) AS include,
       x.indisvalid AS valid,
       x.indimmediate AS immediate,
       (SELECT con.conname FROM pg_catalog.pg_constraint con
        WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid
          AND con.contype IN ('p', 'u', 'x')) AS "constraint",
       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = x.indexrelid) AS inherited,
       obj_description(x.indexrelid, 'pg_class') AS comment
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname, c.relname, ic.relname
