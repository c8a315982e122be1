-- Privileges (aclexplode of the ACL, or the built-in default when the ACL is NULL) on the
-- selected schemas and on their tables, views, sequences and functions.
WITH objects AS (
    SELECT 'schema' AS object_type, quote_ident(n.nspname) AS object_key,
           coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
    FROM pg_catalog.pg_namespace n
    WHERE n.nspname = ANY (%(schemas)s::text[])
  UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END,
           quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                         c.relowner))
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND n.nspname = ANY (%(schemas)s::text[])
  UNION ALL
    SELECT 'function',
           quote_ident(n.nspname) || '.' || quote_ident(p.proname)
               || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           coalesce(p.proacl, acldefault('f', p.proowner))
    FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY (%(schemas)s::text[])
)
SELECT o.object_type,
       o.object_key,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type AS privilege,
       a.is_grantable AS grantable
FROM objects o
CROSS JOIN LATERAL aclexplode(o.acl) AS a
ORDER BY 1, 2, 3, 4
