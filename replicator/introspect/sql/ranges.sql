-- Range types with their subtype, operator class (when not the default), collation, support
-- functions and the name of their multirange type.
SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname) AS key,
       n.nspname AS schema_name,
       t.typname AS name,
       CASE WHEN st.typnamespace = 'pg_catalog'::regnamespace
                 OR starts_with(format_type(r.rngsubtype, NULL), quote_ident(stn.nspname) || '.')
            THEN format_type(r.rngsubtype, NULL)
            ELSE quote_ident(stn.nspname) || '.' || format_type(r.rngsubtype, NULL) END AS subtype,
       CASE WHEN NOT opc.opcdefault
            THEN quote_ident(opn.nspname) || '.' || quote_ident(opc.opcname) END AS subtype_opclass,
       CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation THEN (
           SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
           FROM pg_catalog.pg_collation co
           JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
           WHERE co.oid = r.rngcollation) END AS collation,
       CASE WHEN r.rngcanonical <> 0 THEN r.rngcanonical::regproc::text END AS canonical,
       CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END AS subtype_diff,
       (SELECT quote_ident(mn.nspname) || '.' || quote_ident(mt.typname)
        FROM pg_catalog.pg_type mt
        JOIN pg_catalog.pg_namespace mn ON mn.oid = mt.typnamespace
        WHERE mt.oid = r.rngmultitypid) AS multirange,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_catalog.pg_range r
JOIN pg_catalog.pg_type t ON t.oid = r.rngtypid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_type st ON st.oid = r.rngsubtype
JOIN pg_catalog.pg_namespace stn ON stn.oid = st.typnamespace
JOIN pg_catalog.pg_opclass opc ON opc.oid = r.rngsubopc
JOIN pg_catalog.pg_namespace opn ON opn.oid = opc.opcnamespace
WHERE n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_type'::regclass
          AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY n.nspname, t.typname
