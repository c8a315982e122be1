-- Composite types (CREATE TYPE ... AS (...)), not the row types of tables and views, with their
-- attributes in attnum order.
SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname) AS key,
       n.nspname AS schema_name,
       t.typname AS name,
       coalesce((SELECT json_agg(json_build_object(
                        'name', a.attname,
                        'type', CASE WHEN at.typnamespace = 'pg_catalog'::regnamespace
                                          OR starts_with(format_type(a.atttypid, a.atttypmod), quote_ident(atn.nspname) || '.')
                                     THEN format_type(a.atttypid, a.atttypmod)
                                     ELSE quote_ident(atn.nspname) || '.' || format_type(a.atttypid, a.atttypmod) END,
                        'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation THEN (
                                         SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                                         FROM pg_catalog.pg_collation co
                                         JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                                         WHERE co.oid = a.attcollation) END,
                        'comment', col_description(c.oid, a.attnum)) ORDER BY a.attnum)
                 FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
                 JOIN pg_catalog.pg_namespace atn ON atn.oid = at.typnamespace
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json) AS attributes,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
WHERE t.typtype = 'c'
  AND n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_type'::regclass
          AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY n.nspname, t.typname
