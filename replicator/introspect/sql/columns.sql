-- Columns of tables, views and materialized views, in attnum order.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
       a.attname AS name,
       -- format_type omits the schema of a type visible on search_path; add it back so the
       -- result does not depend on the session's search_path.
       CASE WHEN t.typnamespace = 'pg_catalog'::regnamespace
                 OR starts_with(format_type(a.atttypid, a.atttypmod), quote_ident(tn.nspname) || '.')
            THEN format_type(a.atttypid, a.atttypmod)
            ELSE quote_ident(tn.nspname) || '.' || format_type(a.atttypid, a.atttypmod) END AS type,
       NOT a.attnotnull AS nullable,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END AS "default",
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END AS identity,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END AS generated,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN (
           SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
           FROM pg_catalog.pg_collation co
           JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
           WHERE co.oid = a.attcollation) END AS collation,
       col_description(c.oid, a.attnum) AS comment,
       a.attislocal AS is_local,
       a.attinhcount > 0 AS inherited
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND n.nspname = ANY (%(schemas)s::text[])
ORDER BY n.nspname, c.relname, a.attnum
