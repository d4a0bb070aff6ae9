\set k random(1, 10)
SELECT qcache_get('sz1000000:' || :k);
