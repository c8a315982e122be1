-- Columns whose binary COPY form embeds type OIDs (user composite and range types, arrays of user
-- types, domains over them) or that have no binary I/O: master and replica OIDs differ, so such a
-- table is copied in text format.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation, a.attname AS column_name
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE c.oid IN (SELECT t::regclass FROM unnest(%(tables)s::text[]) AS t) AND a.attnum > 0 AND NOT a.attisdropped
  AND ((b.oid >= 16384 AND b.typtype IN ('c', 'r', 'm'))
       OR (b.typelem <> 0 AND b.typelem >= 16384)
       OR b.typsend::oid = 0 OR b.typreceive::oid = 0)
