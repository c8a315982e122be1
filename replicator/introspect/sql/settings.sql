-- Pin the settings that change how the server renders names and constants, for the rest of the
-- introspection transaction, so that types, defaults and definitions come out the same whatever
-- the session's settings: search_path = pg_catalog makes format_type / pg_get_expr / pg_get_*def
-- schema-qualify every name, and TimeZone / DateStyle / IntervalStyle / extra_float_digits fix
-- how literals (partition bounds, defaults) are printed. set_config(..., true) is
-- transaction-local and the introspection savepoint is rolled back at the end, which restores
-- the caller's settings.
SELECT pg_catalog.set_config('search_path', 'pg_catalog', true) AS search_path,
       pg_catalog.set_config('TimeZone', 'UTC', true) AS timezone,
       pg_catalog.set_config('DateStyle', 'ISO, YMD', true) AS datestyle,
       pg_catalog.set_config('IntervalStyle', 'postgres', true) AS intervalstyle,
       pg_catalog.set_config('extra_float_digits', '3', true) AS extra_float_digits
