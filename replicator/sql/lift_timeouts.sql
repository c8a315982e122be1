-- Lift, for the current transaction only, the limits a database or role sets on how long a statement
-- may run and a transaction may sit idle, where the session's startup options did not reach the
-- server (a pooler refused or dropped them). A setting the options set has source 'client' and stays:
-- ours lift it already, and a limit the URL's options chose is kept. set_config(..., true) ends with
-- the transaction, so nothing reaches a pooler's other clients.
SELECT CASE WHEN s.source <> 'client' AND s.setting <> '0'
            THEN pg_catalog.set_config('statement_timeout', '0', true) END,
       CASE WHEN i.source <> 'client' AND i.setting <> '0'
            THEN pg_catalog.set_config('idle_in_transaction_session_timeout', '0', true) END
FROM pg_catalog.pg_settings s, pg_catalog.pg_settings i
WHERE s.name = 'statement_timeout' AND i.name = 'idle_in_transaction_session_timeout'
