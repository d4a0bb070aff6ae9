-- bench-modes: prepared simple
-- A qcache_fetch hit of the per-category aggregate (the text of bench/peers/scripts/agg.sql,
-- without its semicolon; bench/run.sh checks they match). The entry is stored by
-- bench/qcache/setup.sql; nothing invalidates products during the run, so every call is a hit.
SELECT qcache_fetch('agg', 'SELECT category_id, count(*), avg(price) FROM products GROUP BY category_id ORDER BY category_id', 0);
