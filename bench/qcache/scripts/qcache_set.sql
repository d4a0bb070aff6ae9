\set k random(1, :nkeys)
SELECT qcache_set('k' || :k, cache_const_sql(''), 0);
