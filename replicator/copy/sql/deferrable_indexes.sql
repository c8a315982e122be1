-- The indexes of one replica table that a copy into it while empty may drop before the load and build
-- after it (replicator.copy.indexes), with the statements that drop, build and comment each. Run with
-- search_path empty, so every name in the definitions comes out schema-qualified.
-- Left in place, and maintained row by row as usual:
--   * an index another object needs: a foreign key's referenced key (a normal dependency on the index
--     or its constraint), a clustered or replica-identity index, one attached to a partitioned index;
--   * one in a tablespace of its own or with per-column statistics targets, a constraint's index with
--     a comment of its own, and a primary key or unique constraint with storage parameters (fillfactor,
--     deduplicate_items): the definitions printed here carry none of them, and one not valid or not ready (a failed CREATE INDEX CONCURRENTLY: not ours to fix);
--   * an index an extension owns, or one marked DEPENDS ON EXTENSION;
--   * every index where this role could not build it again: it must own the table (to drop it) and
--     hold CREATE on the schema (to create it), which a table's owner need not.
SELECT ic.relname AS name,
       CASE WHEN con.oid IS NULL THEN pg_catalog.format('DROP INDEX %%I.%%I', n.nspname, ic.relname)
            ELSE pg_catalog.format('ALTER TABLE %%s DROP CONSTRAINT %%I', i.indrelid::regclass, con.conname) END
           AS drop_sql,
       CASE WHEN con.oid IS NULL THEN pg_catalog.pg_get_indexdef(i.indexrelid)
            ELSE pg_catalog.format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', i.indrelid::regclass, con.conname,
                                   pg_catalog.pg_get_constraintdef(con.oid)) END AS create_sql,
       CASE WHEN note.text IS NULL THEN NULL
            WHEN con.oid IS NULL THEN
                pg_catalog.format('COMMENT ON INDEX %%I.%%I IS %%L', n.nspname, ic.relname,
                                  note.text)
            ELSE pg_catalog.format('COMMENT ON CONSTRAINT %%I ON %%s IS %%L', con.conname, i.indrelid::regclass,
                                   note.text) END AS comment_sql
FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = ic.relnamespace
JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
LEFT JOIN pg_catalog.pg_constraint AS con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
CROSS JOIN LATERAL (SELECT CASE WHEN con.oid IS NULL THEN pg_catalog.obj_description(i.indexrelid, 'pg_class')
                                ELSE pg_catalog.obj_description(con.oid, 'pg_constraint') END AS text) AS note
WHERE i.indrelid = %(table)s::regclass
  AND t.relkind = 'r' AND ic.relkind = 'i' AND NOT ic.relispartition
  AND pg_catalog.pg_has_role(t.relowner, 'USAGE') AND pg_catalog.has_schema_privilege(n.oid, 'CREATE')
  AND i.indisvalid AND i.indisready AND i.indislive
  AND NOT i.indisclustered AND NOT i.indisreplident
  AND ic.reltablespace = 0
  AND (con.oid IS NULL OR pg_catalog.obj_description(i.indexrelid, 'pg_class') IS NULL)
  AND (con.oid IS NULL OR con.contype = 'x' OR ic.reloptions IS NULL)
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                  WHERE a.attrelid = i.indexrelid AND a.attstattarget IS NOT NULL AND a.attstattarget <> -1)
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                  WHERE d.deptype = 'n'
                    AND ((d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = i.indexrelid)
                         OR (d.refclassid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.refobjid = con.oid)))
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid
                    AND d.deptype IN ('e', 'x'))
ORDER BY con.contype = 'p' DESC NULLS LAST, ic.relname
