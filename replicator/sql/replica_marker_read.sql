-- The replica marker: which master this database replicates.
SELECT master_system_identifier, master_database_oid, master_database, master_address, marked_at
FROM _replicator.replica_of
