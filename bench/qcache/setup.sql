-- qcache cases of the benchmark: run by bench/peers/run.sh (EXTRA_SETUP_SQL) in db "bench",
-- after the peers' dataset (bench/peers/sql/setup.sql), so make_doc(i) and cache_const_sql(k)
-- exist.  psql variables: nrows, nkeys.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE EXTENSION qcache;

-- The same nkeys ~1 KB values as kv_unlogged and memcached, under the same keys 'k'||i,
-- with ttl 0 (no expiry: nothing may expire during a run).
SELECT count(*) FILTER (WHERE qcache_set('k' || i, make_doc(i), 0)) AS qcache_stored
FROM generate_series(1, :nkeys) i \gset
SELECT (:qcache_stored = :nkeys) AS qcache_ok \gset
\if :qcache_ok
\else
  \echo 'qcache preload failed: only' :qcache_stored 'of' :nkeys 'values stored'
  SELECT 1/0;
\endif

-- Every key must read back exactly what kv_unlogged holds.
SELECT count(*) AS qcache_mismatch FROM kv_unlogged WHERE qcache_get(key) IS DISTINCT FROM value \gset
SELECT (:qcache_mismatch = 0) AS qcache_ok \gset
\if :qcache_ok
\else
  \echo 'qcache preload check failed:' :qcache_mismatch 'keys read back differently'
  SELECT 1/0;
\endif

-- The value the set cases store: cache_const_sql() is an IMMUTABLE SQL function that the
-- planner inlines and folds into a constant ~1 KB jsonb (make_doc(0)), so a set measures
-- qcache_set, not building the document.  Show its size for the record.
SELECT pg_column_size(cache_const_sql('')) AS set_value_bytes,
       round(avg(pg_column_size(value))) AS preloaded_value_bytes
FROM kv_unlogged;
SELECT entries, bytes_used, bytes_limit FROM qcache_stats;
