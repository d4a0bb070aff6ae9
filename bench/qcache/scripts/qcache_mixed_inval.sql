-- 90% gets, 10% invalidations of a random key of :nkeys. A get that misses (its key was
-- invalidated since it was last read: about 10% of gets in the steady state) reads the value
-- from kv_unlogged and stores it again (bench_refill, bench/qcache/setup.sql), in the same
-- statement: cache-aside read-through. Compare with qcache_get (pure hits) and qcache_mixed.
\set r random(1, 10)
\set k random(1, :nkeys)
\if :r = 1
SELECT qcache_invalidate('k' || :k);
\else
SELECT coalesce(qcache_get('k' || :k), bench_refill('k' || :k));
\endif
