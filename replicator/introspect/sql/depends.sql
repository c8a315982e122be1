-- Dependencies between schema objects (pg_depend), for ordering a migration plan: which object
-- uses which. Each side is mapped to an object reference: kind (table, view, sequence, type,
-- function, constraint, index, trigger, policy, rule, column, extension), key (the object's key; the
-- table's key for objects nested in a table) and name (the nested object's name), where:
--   * an array type stands for its element type, a multirange for its range, and a table's or
--     view's row type for the table or view (a function returning SETOF customer uses the table);
--   * an index that backs a constraint is that constraint; a domain's CHECK is the domain;
--   * a view's _RETURN rule is the view; a column default (pg_attrdef) is its column;
--   * a dependency on one column of a table carries the column's name (on_name).
-- Only normal and automatic dependencies are read, between objects outside PostgreSQL's own
-- schemas, where at least one side is in the compared schemas (a trigger on auth.users calling
-- public.handle_new_user() is as relevant as a foreign key into auth.users). Objects that belong to
-- an extension are never dependents; as referenced objects they carry the extension's name.
-- Left out: what the model already says (a constraint, index or sequence belonging to its table,
-- every object belonging to its schema) and self-references.
WITH members AS (
    SELECT e.classid, e.objid, x.extname
    FROM pg_catalog.pg_depend e
    JOIN pg_catalog.pg_extension x ON x.oid = e.refobjid
    WHERE e.deptype = 'e' AND e.refclassid = 'pg_catalog.pg_extension'::regclass
), objects AS (
    -- relations; an index is its table's index, or the constraint it backs
    SELECT 'pg_catalog.pg_class'::regclass AS classid, c.oid AS objid,
           CASE WHEN c.relkind IN ('r', 'p', 'f') THEN 'table'
                WHEN c.relkind IN ('v', 'm') THEN 'view'
                WHEN c.relkind = 'S' THEN 'sequence'
                WHEN c.relkind = 'c' THEN 'type'
                WHEN con.oid IS NOT NULL THEN 'constraint'
                ELSE 'index' END AS kind,
           quote_ident(n.nspname) || '.' || quote_ident(coalesce(tc.relname, c.relname)) AS key,
           CASE WHEN c.relkind IN ('i', 'I') THEN coalesce(con.conname, c.relname) END AS name,
           n.nspname AS schema_name,
           m.extname
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_index x ON x.indexrelid = c.oid
    LEFT JOIN pg_catalog.pg_class tc ON tc.oid = x.indrelid
    LEFT JOIN pg_catalog.pg_constraint con
           ON con.conindid = c.oid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x')
    LEFT JOIN members m ON m.classid = 'pg_catalog.pg_class'::regclass
                       AND m.objid = coalesce(tc.oid, c.oid)
    WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'c', 'i', 'I')
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    -- types; arrays and multiranges stand for their base, row types for their relation
    SELECT 'pg_catalog.pg_type'::regclass, t.oid,
           CASE WHEN rel.relkind IN ('r', 'p', 'f') THEN 'table'
                WHEN rel.relkind IN ('v', 'm') THEN 'view' ELSE 'type' END,
           quote_ident(bn.nspname) || '.' || quote_ident(coalesce(rel.relname, b.typname)),
           NULL,
           bn.nspname,
           m.extname
    FROM pg_catalog.pg_type t
    JOIN pg_catalog.pg_type b
      ON b.oid = coalesce(CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem END,
                          (SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = t.oid),
                          t.oid)
    JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace
    LEFT JOIN pg_catalog.pg_class rel ON rel.oid = b.typrelid
    LEFT JOIN members m ON (m.classid = 'pg_catalog.pg_type'::regclass AND m.objid = b.oid)
                        OR (m.classid = 'pg_catalog.pg_class'::regclass AND m.objid = rel.oid)
    WHERE bn.nspname !~ '^pg_' AND bn.nspname <> 'information_schema'
  UNION ALL
    -- functions, procedures, aggregates (not the constructors PostgreSQL makes for range types)
    SELECT 'pg_catalog.pg_proc'::regclass, p.oid, 'function',
           quote_ident(n.nspname) || '.' || quote_ident(p.proname)
               || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           NULL, n.nspname, m.extname
    FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    LEFT JOIN members m ON m.classid = 'pg_catalog.pg_proc'::regclass AND m.objid = p.oid
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend i
                      WHERE i.classid = 'pg_catalog.pg_proc'::regclass AND i.objid = p.oid
                        AND i.deptype = 'i')
  UNION ALL
    -- constraints of tables; a domain's constraint stands for the domain
    SELECT 'pg_catalog.pg_constraint'::regclass, con.oid,
           CASE WHEN con.conrelid <> 0 THEN 'constraint' ELSE 'type' END,
           quote_ident(n.nspname) || '.' || quote_ident(coalesce(c.relname, t.typname)),
           CASE WHEN con.conrelid <> 0 THEN con.conname END,
           n.nspname, NULL
    FROM pg_catalog.pg_constraint con
    LEFT JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
    LEFT JOIN pg_catalog.pg_type t ON t.oid = con.contypid
    JOIN pg_catalog.pg_namespace n ON n.oid = coalesce(c.relnamespace, t.typnamespace)
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'pg_catalog.pg_trigger'::regclass, tg.oid, 'trigger',
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), tg.tgname, n.nspname, NULL
    FROM pg_catalog.pg_trigger tg
    JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT tg.tgisinternal
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'pg_catalog.pg_policy'::regclass, pol.oid, 'policy',
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), pol.polname, n.nspname, NULL
    FROM pg_catalog.pg_policy pol
    JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'pg_catalog.pg_rewrite'::regclass, r.oid,
           CASE WHEN r.rulename = '_RETURN' THEN 'view' ELSE 'rule' END,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           CASE WHEN r.rulename <> '_RETURN' THEN r.rulename END,
           n.nspname, NULL
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'pg_catalog.pg_attrdef'::regclass, ad.oid, 'column',
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname, n.nspname, NULL
    FROM pg_catalog.pg_attrdef ad
    JOIN pg_catalog.pg_class c ON c.oid = ad.adrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'pg_catalog.pg_collation'::regclass, co.oid, 'collation',
           quote_ident(n.nspname) || '.' || quote_ident(co.collname), NULL, n.nspname, m.extname
    FROM pg_catalog.pg_collation co
    JOIN pg_catalog.pg_namespace n ON n.oid = co.collnamespace
    LEFT JOIN members m ON m.classid = 'pg_catalog.pg_collation'::regclass AND m.objid = co.oid
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'pg_catalog.pg_extension'::regclass, x.oid, 'extension', x.extname, NULL, n.nspname, x.extname
    FROM pg_catalog.pg_extension x
    JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
), edges AS (
    SELECT CASE WHEN o.kind = 'table' AND d.objsubid > 0 THEN 'column' ELSE o.kind END AS kind,
           o.key,
           CASE WHEN o.kind = 'table' AND d.objsubid > 0 THEN oa.attname ELSE o.name END AS name,
           o.schema_name,
           r.kind AS on_kind,
           r.key AS on_key,
           CASE WHEN r.kind IN ('table', 'view') AND d.refobjsubid > 0 THEN ra.attname ELSE r.name END AS on_name,
           r.schema_name AS on_schema,
           r.extname AS on_extension
    FROM pg_catalog.pg_depend d
    JOIN objects o ON o.classid = d.classid AND o.objid = d.objid
    JOIN objects r ON r.classid = d.refclassid AND r.objid = d.refobjid
    LEFT JOIN pg_catalog.pg_attribute oa
           ON d.classid = 'pg_catalog.pg_class'::regclass AND oa.attrelid = d.objid AND oa.attnum = d.objsubid
    LEFT JOIN pg_catalog.pg_attribute ra
           ON d.refclassid = 'pg_catalog.pg_class'::regclass AND ra.attrelid = d.refobjid AND ra.attnum = d.refobjsubid
    WHERE d.deptype IN ('n', 'a')
      AND o.extname IS NULL
      AND (o.schema_name = ANY (%(schemas)s::text[]) OR r.schema_name = ANY (%(schemas)s::text[]))
)
SELECT DISTINCT kind, key, name, schema_name, on_kind, on_key, on_name, on_schema, on_extension
FROM edges
WHERE NOT (kind = on_kind AND key = on_key AND name IS NOT DISTINCT FROM on_name)
  -- what belongs to its own table: constraints, indexes, sequences owned by a column, and a
  -- trigger's / policy's / default's link to the table as a whole
  AND NOT (on_kind = 'table' AND key = on_key AND kind IN ('constraint', 'index', 'sequence'))
  AND NOT (on_kind = 'table' AND key = on_key AND on_name IS NULL AND kind IN ('trigger', 'policy', 'column', 'rule'))
  AND NOT (kind = 'column' AND on_kind = 'table' AND key = on_key AND name = on_name)
  AND NOT (kind = 'sequence' AND on_kind = 'table')
ORDER BY kind, key, name, on_kind, on_key, on_name
