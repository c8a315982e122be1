-- A digest of the catalog rows introspection reads, so that `replicator sync` can tell, with one
-- query, that a database's structure has not changed since it last introspected it.
--
-- Each catalog contributes its row count and the sum of a hash of every row's xmin: any DDL, GRANT
-- or COMMENT writes catalog rows, which get a new xmin (or appear, or disappear), so the sum moves;
-- it does not depend on row order, and VACUUM's in-place statistics updates (relpages, reltuples)
-- leave it alone. pg_index's state flags, which CREATE/DROP INDEX CONCURRENTLY may set in place,
-- are hashed as values. Catalogs a role may not read row by row (roles, the database) are hashed by
-- content. Plus what is not in the catalogs: the server version, the session's search_path, and the
-- extensions the server could install.
SELECT pg_catalog.md5(pg_catalog.string_agg(part, '|' ORDER BY part)) FROM (
  SELECT 'namespace:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) AS part FROM pg_catalog.pg_namespace
  UNION ALL SELECT 'class:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_class
  UNION ALL SELECT 'attribute:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_attribute
  UNION ALL SELECT 'attrdef:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_attrdef
  UNION ALL SELECT 'constraint:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_constraint
  UNION ALL SELECT 'index:' || count(*) || ':' || coalesce(sum(hashtextextended(
      xmin::text || indisvalid::text || indisready::text || indislive::text, 0)), 0) FROM pg_catalog.pg_index
  UNION ALL SELECT 'trigger:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_trigger
  UNION ALL SELECT 'policy:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_policy
  UNION ALL SELECT 'rewrite:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_rewrite
  UNION ALL SELECT 'proc:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_proc
  UNION ALL SELECT 'aggregate:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_aggregate
  UNION ALL SELECT 'type:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_type
  UNION ALL SELECT 'enum:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_enum
  UNION ALL SELECT 'range:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_range
  UNION ALL SELECT 'collation:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_collation
  UNION ALL SELECT 'description:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_description
  UNION ALL SELECT 'sequence:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_sequence
  UNION ALL SELECT 'extension:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_extension
  UNION ALL SELECT 'inherits:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_inherits
  UNION ALL SELECT 'depend:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_depend
  UNION ALL SELECT 'opclass:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_opclass
  UNION ALL SELECT 'operator:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_operator
  UNION ALL SELECT 'am:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_am
  UNION ALL SELECT 'language:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_language
  UNION ALL SELECT 'init_privs:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_init_privs
  UNION ALL SELECT 'default_acl:' || count(*) || ':' || coalesce(sum(hashtextextended(xmin::text, 0)), 0) FROM pg_catalog.pg_default_acl
  UNION ALL SELECT 'roles:' || coalesce(md5(string_agg(r::text, ',' ORDER BY r.oid)), '') FROM pg_catalog.pg_roles AS r
  UNION ALL SELECT 'members:' || coalesce(md5(string_agg(m::text, ',' ORDER BY m.roleid, m.member)), '') FROM pg_catalog.pg_auth_members AS m
  UNION ALL SELECT 'database:' || coalesce(md5(string_agg((d.datname, d.encoding, d.datcollate, d.datctype, d.datacl)::text, ',')), '')
      FROM pg_catalog.pg_database AS d
      WHERE d.datname = current_database()
  UNION ALL SELECT 'available:' || coalesce(md5(string_agg(v.name || ' ' || v.version, ',' ORDER BY v.name, v.version)), '')
      FROM pg_catalog.pg_available_extension_versions AS v
  UNION ALL SELECT 'server:' || current_setting('server_version_num') || ':' || current_setting('search_path')
) AS d
