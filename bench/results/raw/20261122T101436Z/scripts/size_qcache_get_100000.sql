\set k random(1, 10)
SELECT qcache_get('sz100000:' || :k);
