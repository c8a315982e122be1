-- What the last complete sync of each replica table can vouch for (replicator.copy.baseline).
CREATE TABLE IF NOT EXISTS _replicator.baselines (
    table_name   text PRIMARY KEY,   -- replica table, schema.name
    fingerprint  text NOT NULL,      -- both tables' storage, the master's cluster and timeline, the copy's columns and masks
    policy       text NOT NULL,      -- the policy that sync applied ('exact': the replica equalled the master)
    master_xmin  bigint NOT NULL,    -- xmin (64-bit) of the master snapshot that sync read
    replica_xmin bigint NOT NULL,    -- xmin (64-bit) of a replica snapshot taken before that sync wrote
    own_xids     bigint[] NOT NULL,  -- the replica transactions of that sync that wrote the table
    run_id       uuid NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
)
