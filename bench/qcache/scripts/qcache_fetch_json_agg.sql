-- bench-modes: prepared simple
-- A qcache_fetch_json hit of the per-category aggregate (the text of bench/peers/scripts/agg.sql,
-- without its semicolon): the same rows as qcache_fetch_agg, kept and returned as JSON text, so
-- that a hit is sent without turning jsonb into text. The first call of the run fills the entry.
SELECT qcache_fetch_json('agg_json', 'SELECT category_id, count(*), avg(price) FROM products GROUP BY category_id ORDER BY category_id', 0);
