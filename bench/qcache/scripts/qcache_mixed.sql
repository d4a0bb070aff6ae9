\set r random(1, 10)
\set k random(1, :nkeys)
\if :r = 1
SELECT qcache_set('k' || :k, cache_const_sql(''), 0);
\else
SELECT qcache_get('k' || :k);
\endif
