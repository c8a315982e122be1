-- Who a server and database are (replicator.identity), read on both sides before anything is written.
-- The _replicator tables tell a replica apart: a database that has them is never used as a master.
SELECT d.oid::bigint AS database_oid,
       d.datname AS database,
       pg_catalog.pg_is_in_recovery() AS in_recovery,
       pg_catalog.current_setting('default_transaction_read_only') AS default_transaction_read_only,
       pg_catalog.current_setting('transaction_read_only') AS transaction_read_only,
       pg_catalog.to_regclass('_replicator.replica_of') IS NOT NULL AS has_marker,
       (pg_catalog.to_regclass('_replicator.checkpoints') IS NOT NULL
        OR pg_catalog.to_regclass('_replicator.dropped_constraints') IS NOT NULL) AS has_bookkeeping
FROM pg_catalog.pg_database AS d
WHERE d.datname = pg_catalog.current_database()
