-- The role this run connects as on the master: attributes, role memberships, and which of those
-- memberships carry write power (superuser, pg_write_all_data, or any write privilege on a table of
-- the replicated schemas). A membership counts even without INHERIT: the member can SET ROLE.
SELECT r.rolname AS role,
       r.rolsuper AS superuser,
       r.rolbypassrls AS bypassrls,
       r.rolcreaterole AS createrole,
       r.rolcreatedb AS createdb,
       r.rolreplication AS replication,
       current_setting('row_security') AS row_security,
       current_setting('is_superuser') AS is_superuser,
       has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
       coalesce((SELECT array_agg(cfg ORDER BY cfg)
                 FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS cfg
                 WHERE s.setrole = r.oid
                   AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                                             WHERE datname = current_database()))),
                '{}'::text[]) AS role_settings,
       coalesce((SELECT array_agg(b.rolname::text ORDER BY b.rolname)
                 FROM pg_catalog.pg_roles b
                 WHERE b.oid <> r.oid AND pg_has_role(r.oid, b.oid, 'MEMBER')), '{}'::text[]) AS member_of,
       coalesce((SELECT array_agg(b.rolname::text ORDER BY b.rolname)
                 FROM pg_catalog.pg_roles b
                 WHERE b.oid <> r.oid AND pg_has_role(r.oid, b.oid, 'MEMBER')
                   AND (b.rolsuper OR b.rolname = 'pg_write_all_data' OR b.rolcreaterole
                        OR EXISTS (SELECT 1
                                   FROM pg_catalog.pg_class c
                                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                   WHERE n.nspname = ANY (%(schemas)s::text[])
                                     AND c.relkind IN ('r', 'p')
                                     AND (c.relowner = b.oid
                                          OR has_table_privilege(b.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))))),
                '{}'::text[]) AS writing_roles
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user
