-- Views and materialized views with their definitions and what they read: the relations and
-- functions their rewrite rule depends on (pg_depend via pg_rewrite), for ordering a plan.
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS key,
       n.nspname AS schema_name,
       c.relname AS name,
       c.relkind = 'm' AS materialized,
       pg_get_viewdef(c.oid) AS definition,
       coalesce(c.reloptions, '{}'::text[]) AS options,
       CASE WHEN c.relkind = 'm' THEN c.relispopulated END AS populated,
       obj_description(c.oid, 'pg_class') AS comment,
       ARRAY(SELECT DISTINCT quote_ident(dn.nspname) || '.' || quote_ident(dc.relname)
             FROM pg_catalog.pg_rewrite r
             JOIN pg_catalog.pg_depend d
                  ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
                 AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> c.oid
             JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid
             JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
             WHERE r.ev_class = c.oid
             ORDER BY 1) AS depends_on,
       ARRAY(SELECT DISTINCT quote_ident(pn.nspname) || '.' || quote_ident(p.proname)
                             || '(' || pg_get_function_identity_arguments(p.oid) || ')'
             FROM pg_catalog.pg_rewrite r
             JOIN pg_catalog.pg_depend d
                  ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
                 AND d.refclassid = 'pg_catalog.pg_proc'::regclass
             JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
             WHERE r.ev_class = c.oid
               AND pn.nspname <> 'pg_catalog'
             ORDER BY 1) AS depends_on_functions
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::regclass
          AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname
