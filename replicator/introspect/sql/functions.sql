-- Functions, procedures, aggregates and window functions not owned by an extension, and not made
-- by PostgreSQL for a type (range constructors). pg_get_functiondef does not handle aggregates:
-- their CREATE AGGREGATE statement is put together from pg_aggregate (names come out
-- schema-qualified because search_path is pinned to pg_catalog).
SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname)
           || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS key,
       n.nspname AS schema_name,
       p.proname AS name,
       CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
                      WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window' END AS kind,
       pg_get_function_identity_arguments(p.oid) AS identity_arguments,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result,
       l.lanname AS language,
       p.prosecdef AS security_definer,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable'
                          WHEN 'v' THEN 'volatile' END AS volatility,
       CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE (
           SELECT 'CREATE AGGREGATE ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                  || '(' || coalesce(nullif(pg_get_function_arguments(p.oid), ''), '*') || ') ('
                  || concat_ws(', ',
                       'SFUNC = ' || a.aggtransfn::regproc::text,
                       'STYPE = ' || format_type(a.aggtranstype, NULL),
                       CASE WHEN a.aggtransspace <> 0 THEN 'SSPACE = ' || a.aggtransspace END,
                       CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC = ' || a.aggfinalfn::regproc::text END,
                       CASE WHEN a.aggfinalextra THEN 'FINALFUNC_EXTRA' END,
                       CASE WHEN a.aggfinalmodify <> CASE WHEN a.aggkind = 'n' THEN 'r' ELSE 'w' END
                            THEN 'FINALFUNC_MODIFY = ' || CASE a.aggfinalmodify WHEN 'r' THEN 'READ_ONLY'
                                 WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END END,
                       CASE WHEN a.aggcombinefn <> 0 THEN 'COMBINEFUNC = ' || a.aggcombinefn::regproc::text END,
                       CASE WHEN a.aggserialfn <> 0 THEN 'SERIALFUNC = ' || a.aggserialfn::regproc::text END,
                       CASE WHEN a.aggdeserialfn <> 0 THEN 'DESERIALFUNC = ' || a.aggdeserialfn::regproc::text END,
                       CASE WHEN a.agginitval IS NOT NULL THEN 'INITCOND = ' || quote_literal(a.agginitval) END,
                       CASE WHEN a.aggmtransfn <> 0 THEN 'MSFUNC = ' || a.aggmtransfn::regproc::text END,
                       CASE WHEN a.aggminvtransfn <> 0 THEN 'MINVFUNC = ' || a.aggminvtransfn::regproc::text END,
                       CASE WHEN a.aggmtranstype <> 0 THEN 'MSTYPE = ' || format_type(a.aggmtranstype, NULL) END,
                       CASE WHEN a.aggmtransspace <> 0 THEN 'MSSPACE = ' || a.aggmtransspace END,
                       CASE WHEN a.aggmfinalfn <> 0 THEN 'MFINALFUNC = ' || a.aggmfinalfn::regproc::text END,
                       CASE WHEN a.aggmfinalextra THEN 'MFINALFUNC_EXTRA' END,
                       CASE WHEN a.aggmtransfn <> 0
                             AND a.aggmfinalmodify <> CASE WHEN a.aggkind = 'n' THEN 'r' ELSE 'w' END
                            THEN 'MFINALFUNC_MODIFY = ' || CASE a.aggmfinalmodify WHEN 'r' THEN 'READ_ONLY'
                                 WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END END,
                       CASE WHEN a.aggminitval IS NOT NULL THEN 'MINITCOND = ' || quote_literal(a.aggminitval) END,
                       CASE WHEN a.aggsortop <> 0 THEN (
                           SELECT 'SORTOP = OPERATOR(' || quote_ident(opn.nspname) || '.' || o.oprname || ')'
                           FROM pg_catalog.pg_operator o
                           JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace
                           WHERE o.oid = a.aggsortop) END,
                       CASE p.proparallel WHEN 's' THEN 'PARALLEL = SAFE' WHEN 'r' THEN 'PARALLEL = RESTRICTED' END,
                       CASE WHEN a.aggkind = 'h' THEN 'HYPOTHETICAL' END)
                  || ')'
           FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid) END AS definition,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE n.nspname = ANY (%(schemas)s::text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_proc'::regclass
          AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
ORDER BY n.nspname, p.proname, 1
