-- Miss then fill: qcache_fetch of a key never seen before (one of 10^9), so every call misses,
-- runs its query (the primary-key lookup of peers/scripts/pk.sql, as text through SPI), stores
-- the row as jsonb tagged table:public.products, and returns it. Its baseline is pg_pk, the same
-- query uncached and prepared.
\set k random(1, 1000000000)
\set id 1 + :k % :nrows
SELECT qcache_fetch('mf:' || :k, 'SELECT id, category_id, price, name FROM products WHERE id = ' || :id, 60);
