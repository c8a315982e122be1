-- Table constraints: primary key, foreign key, unique, check, exclusion.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
       con.conname AS name,
       CASE con.contype
           WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key' WHEN 'u' THEN 'unique'
           WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion' END AS kind,
       pg_get_constraintdef(con.oid) AS definition,
       ARRAY(SELECT a.attname
             FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       CASE WHEN con.contype = 'f' THEN (
           SELECT quote_ident(fn.nspname) || '.' || quote_ident(f.relname)
           FROM pg_catalog.pg_class f
           JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace
           WHERE f.oid = con.confrelid) END AS referenced_table,
       CASE WHEN con.contype = 'f' THEN ARRAY(
           SELECT a.attname
           FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
           ORDER BY k.ord) END AS referenced_columns,
       CASE WHEN con.contype = 'f' THEN CASE con.confupdtype
           WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
           WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END END AS on_update,
       CASE WHEN con.contype = 'f' THEN CASE con.confdeltype
           WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
           WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END END AS on_delete,
       CASE WHEN con.contype = 'f' THEN CASE con.confmatchtype
           WHEN 'f' THEN 'FULL' WHEN 'p' THEN 'PARTIAL' WHEN 's' THEN 'SIMPLE' END END AS match,
       con.condeferrable AS deferrable,
       con.condeferred AS initially_deferred,
       con.convalidated AS validated,
       CASE WHEN con.conindid <> 0 AND con.contype IN ('p', 'u', 'x') THEN (
           SELECT i.relname FROM pg_catalog.pg_class i WHERE i.oid = con.conindid) END AS index,
       -- from a parent: cloned onto a partition, or inherited (also when the child declared it itself
       -- first, as ALTER TABLE ... INHERIT requires of a CHECK: it stays marked local as well)
       con.conparentid <> 0 OR NOT con.conislocal OR con.coninhcount > 0 AS inherited,
       obj_description(con.oid, 'pg_constraint') AS comment
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype IN ('p', 'f', 'u', 'c', 'x')
  AND c.relkind IN ('r', 'p')
  AND n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname, c.relname, con.conname
