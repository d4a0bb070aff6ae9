-- bench-modes: prepared simple
-- Baseline of qcache_fetch_agg: agg_const_sql() (bench/qcache/setup.sql) is an IMMUTABLE SQL
-- function whose body is the literal jsonb that qcache_fetch('agg', ...) returns, folded to a
-- constant at plan time: the floor for sending this payload.
SELECT agg_const_sql();
