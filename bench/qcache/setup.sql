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

-- ---------------------------------------------------------------- issue 3
-- (a) qcache_fetch of the per-category aggregate.  The query is the text of
-- bench/peers/scripts/agg.sql without its semicolon (bench/run.sh checks that it and
-- scripts/qcache_fetch_agg.sql hold the same text).  The entry 'agg' is stored here, ttl 0, and
-- tagged table:public.products; nothing invalidates products during a run (products is not
-- watched), so the pgbench case only hits.
\set agg_query 'SELECT category_id, count(*), avg(price) FROM products GROUP BY category_id ORDER BY category_id'
SELECT jsonb_array_length(qcache_fetch('agg', :'agg_query', 0)) AS agg_rows \gset
SELECT (:agg_rows = 100
        AND qcache_fetch_cached('agg', :'agg_query') = (SELECT jsonb_agg(r) FROM (SELECT category_id, count(*), avg(price)
                                 FROM products GROUP BY category_id ORDER BY category_id) r)
        AND (SELECT tags @> ARRAY['table:public.products'] FROM qcache_entries WHERE key = 'agg'))
       AS qcache_ok \gset
\if :qcache_ok
\else
  \echo 'qcache_fetch of the aggregate: wrong value or tags (' :agg_rows 'rows)'
  SELECT 1/0;
\endif

-- The baseline: agg_const_sql(), an IMMUTABLE SQL function whose body is the literal jsonb that
-- qcache_fetch returns (taken from the cache itself, so the payload is exactly the same); the
-- planner inlines it and folds the literal into a constant.
SELECT format('CREATE FUNCTION agg_const_sql() RETURNS jsonb LANGUAGE sql IMMUTABLE AS %L',
              format('SELECT %L::jsonb', qcache_fetch_cached('agg', :'agg_query')::text)) \gexec
SELECT (agg_const_sql()::text = qcache_fetch('agg', :'agg_query', 0)::text) AS qcache_ok \gset
\if :qcache_ok
\else
  \echo 'agg_const_sql() differs from the qcache_fetch result'
  SELECT 1/0;
\endif
-- "bench-info name=value" lines land in the harness's run log, where bench/report.py reads them.
SELECT pg_column_size(agg_const_sql()) AS agg_jsonb_bytes, length(agg_const_sql()::text) AS agg_text_bytes \gset
\echo bench-info agg_jsonb_bytes=:agg_jsonb_bytes
\echo bench-info agg_text_bytes=:agg_text_bytes

-- A second fetch is a hit (counted in qcache_stats.hits), not a recomputation.
SELECT hits AS h0, misses AS m0 FROM qcache_stats \gset
SELECT qcache_fetch('agg', :'agg_query', 0) IS NOT NULL AS fetched \gset
SELECT (hits = :h0 + 1 AND misses = :m0) AS qcache_ok FROM qcache_stats \gset
\if :qcache_ok
\else
  \echo 'qcache_fetch of the aggregate was not a hit'
  SELECT 1/0;
\endif

-- (b) The cost of the invalidation triggers: four identical tables of 10000 rows (fillfactor 50,
-- so that the UPDATEs stay HOT), qcache_watch on three of them.
CREATE TABLE upd_plain (id int PRIMARY KEY, v int NOT NULL) WITH (fillfactor = 50);
CREATE TABLE upd_w0 (id int PRIMARY KEY, v int NOT NULL) WITH (fillfactor = 50);
CREATE TABLE upd_w100 (id int PRIMARY KEY, v int NOT NULL) WITH (fillfactor = 50);
CREATE TABLE upd_w10000 (id int PRIMARY KEY, v int NOT NULL) WITH (fillfactor = 50);
INSERT INTO upd_plain SELECT i, 0 FROM generate_series(1, 10000) i;
INSERT INTO upd_w0 SELECT * FROM upd_plain;
INSERT INTO upd_w100 SELECT * FROM upd_plain;
INSERT INTO upd_w10000 SELECT * FROM upd_plain;
VACUUM ANALYZE upd_plain;
VACUUM ANALYZE upd_w0;
VACUUM ANALYZE upd_w100;
VACUUM ANALYZE upd_w10000;
SELECT qcache_watch('upd_w0');
SELECT qcache_watch('upd_w100');
SELECT qcache_watch('upd_w10000');

-- Stores n small entries tagged table:public.<tbl> (keys '<tbl>:1'..'<tbl>:n', ttl 0) and
-- returns how many were stored.  The upd_* pgbench scripts call it in their first transaction.
CREATE FUNCTION bench_upd_populate(tbl text, n int) RETURNS int LANGUAGE sql AS $$
  SELECT count(*)::int FROM generate_series(1, n) i
  WHERE qcache_set(tbl || ':' || i, jsonb_build_object('id', i, 'table', tbl), 0,
                   ARRAY['table:public.' || tbl])
$$;

-- Check the mechanism the cases rely on: entries on a watched table's tag are all stale once an
-- UPDATE of it commits; on the plain table they stay.
SELECT bench_upd_populate('upd_w10000', 10000) = 10000
       AND bench_upd_populate('upd_plain', 100) = 100 AS qcache_ok \gset
\if :qcache_ok
\else
  \echo 'bench_upd_populate did not store every entry'
  SELECT 1/0;
\endif
UPDATE upd_w10000 SET v = v + 1 WHERE id = 1;
UPDATE upd_plain SET v = v + 1 WHERE id = 1;
SELECT (SELECT count(*) FROM generate_series(1, 10000) i WHERE qcache_get('upd_w10000:' || i) IS NOT NULL) = 0
       AND (SELECT count(*) FROM generate_series(1, 100) i WHERE qcache_get('upd_plain:' || i) IS NOT NULL) = 100
       AS qcache_ok \gset
\if :qcache_ok
\else
  \echo 'the UPDATE of a watched table did not invalidate its entries (or the plain one did)'
  SELECT 1/0;
\endif
SELECT qcache_invalidate_tag('table:public.upd_plain');
-- How long the first transaction's store of 10000 entries takes (ms, median of 3).
SELECT round(bench_time_ms($q$SELECT bench_upd_populate('upd_w10000', 10000)$q$, 3)::numeric, 1)
       AS populate_10000_ms \gset
\echo bench-info populate_10000_ms=:populate_10000_ms
SELECT qcache_invalidate_tag('table:public.upd_w10000');

-- ---------------------------------------------------------------- issue 5
-- (a) Read-through refill for qcache_mixed_inval: on a miss, read the key's value from
-- kv_unlogged (the "database") and store it again, as an application's cache-aside code does.
CREATE FUNCTION bench_refill(k text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE v jsonb;
BEGIN
  SELECT value INTO v FROM kv_unlogged WHERE key = k;
  PERFORM qcache_set(k, v, 0);
  RETURN v;
END $$;

-- (b) Values of several sizes for the latency-against-size curve: for each size N in the
-- environment variable BENCH_SIZES (bytes, set by bench/run.sh), 10 keys 'sz<N>:1'..'sz<N>:10'
-- hold a jsonb string whose JSON text is exactly N bytes (hex digits, incompressible enough for
-- any cache that compresses), and size_const_<N>() is an IMMUTABLE SQL function whose body is
-- that literal, folded at plan time: the floor for returning N bytes through SQL.
CREATE FUNCTION bench_size_setup(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE v jsonb; stored int;
BEGIN
  SELECT to_jsonb(left(string_agg(md5(n::text || ':' || i), '' ORDER BY i), n - 2)) INTO v
  FROM generate_series(1, (n - 2) / 32 + 1) i;
  IF length(v::text) <> n THEN
    RAISE EXCEPTION 'size % : JSON text is % bytes', n, length(v::text);
  END IF;
  SELECT count(*) FILTER (WHERE qcache_set('sz' || n || ':' || i, v, 0)) INTO stored
  FROM generate_series(1, 10) i;
  IF stored <> 10 THEN
    RAISE EXCEPTION 'size %: only % of 10 values stored (qcache.max_entry_size?)', n, stored;
  END IF;
  EXECUTE format('CREATE FUNCTION size_const_%s() RETURNS jsonb LANGUAGE sql IMMUTABLE AS %L',
                 n, format('SELECT %L::jsonb', v::text));
  RETURN pg_column_size(v);
END $$;
\getenv bench_sizes BENCH_SIZES
\if :{?bench_sizes}
SELECT s AS size_bytes, bench_size_setup(s::int) AS jsonb_bytes
FROM unnest(string_to_array(trim(:'bench_sizes'), ' ')) s WHERE s <> '';
\endif
SELECT entries, bytes_used, bytes_limit FROM qcache_stats;
