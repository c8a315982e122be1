-- Every (sequence, table, column) where the column takes its values from the sequence: an identity
-- column, a column the sequence is OWNED BY (serial), or a column whose DEFAULT calls nextval() on it
-- without owning it (a sequence shared by several tables, or created by hand). A copy must advance
-- each such sequence past the values it brought in, or the replica's next insert collides.
WITH users AS (
    -- identity and OWNED BY: pg_depend from the sequence to the column
    SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    WHERE d.classid = 'pg_catalog.pg_class'::regclass
      AND d.refclassid = 'pg_catalog.pg_class'::regclass
      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
  UNION
    -- DEFAULT nextval('seq'): pg_depend from the column default to the sequence
    SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_catalog.pg_attrdef ad
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
    JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
    WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
)
SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname) AS sequence,
       sn.nspname AS sequence_schema, s.relname AS sequence_name,
       quote_ident(tn.nspname) || '.' || quote_ident(t.relname) AS "table",
       tn.nspname AS table_schema, t.relname AS table_name,
       a.attname AS "column",
       format_type(a.atttypid, NULL) AS column_type,
       q.seqincrement AS increment,
       a.attidentity <> '' AS identity,
       t.relkind = 'p' AS partitioned
FROM users u
JOIN pg_catalog.pg_class s ON s.oid = u.seq
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
JOIN pg_catalog.pg_class t ON t.oid = u.rel
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.attnum AND NOT a.attisdropped
-- partitions inherit the parent's default: the parent stands for them
WHERE NOT t.relispartition
ORDER BY 1, 4, 7
