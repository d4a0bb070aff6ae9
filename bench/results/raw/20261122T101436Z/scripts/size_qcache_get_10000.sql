\set k random(1, 10)
SELECT qcache_get('sz10000:' || :k);
