-- Record on the replica which master it replicates (one row). replicator refuses a database that has
-- this table as a master, and refuses to write to it for another master without --replica-of-new-master.
CREATE TABLE IF NOT EXISTS _replicator.replica_of (
    singleton                boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    master_system_identifier text,
    master_database_oid      bigint NOT NULL,
    master_database          text NOT NULL,
    master_address           text NOT NULL,
    marked_at                timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE _replicator.replica_of IS
    'written by replicator: the master this database is a replica of; never use this database as a master';
