-- Upsert the one marker row; unchanged when it already names this master.
INSERT INTO _replicator.replica_of AS r
    (master_system_identifier, master_database_oid, master_database, master_address)
VALUES (%(system_identifier)s, %(database_oid)s, %(database)s, %(address)s)
ON CONFLICT (singleton) DO UPDATE
SET master_system_identifier = excluded.master_system_identifier,
    master_database_oid = excluded.master_database_oid,
    master_database = excluded.master_database,
    master_address = excluded.master_address,
    marked_at = now()
WHERE (r.master_system_identifier, r.master_database_oid, r.master_database, r.master_address)
      IS DISTINCT FROM (excluded.master_system_identifier, excluded.master_database_oid,
                        excluded.master_database, excluded.master_address)
