--
-- fetch_tags: qcache_fetch tags each entry with table:<schema>.<name> of
-- every table and view its plan reads -- views count together with the
-- tables under them -- in addition to the tags given.  A bare qcache_watch
-- of a table then keeps every cached query over it correct, through views
-- too: the next fetch after a committed write runs the query again.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
SELECT qcache_clear() >= 0 AS cleared;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE TABLE ft_categories (id int PRIMARY KEY, name text);
CREATE TABLE ft_products (id int PRIMARY KEY, category_id int REFERENCES ft_categories,
                          price int);
CREATE TABLE ft_orders (product_id int, qty int);
INSERT INTO ft_categories VALUES (1, 'tools'), (2, 'toys');
INSERT INTO ft_products VALUES (1, 1, 10), (2, 1, 20), (3, 2, 30);
INSERT INTO ft_orders VALUES (1, 5), (3, 1);
CREATE VIEW ft_v AS SELECT id, price FROM ft_products WHERE price > 5;
CREATE VIEW ft_vv AS SELECT id FROM ft_v;
CREATE VIEW ft_stats AS
	SELECT c.name, count(*) AS n, sum(p.price) AS total
	FROM ft_products p JOIN ft_categories c ON c.id = p.category_id
	GROUP BY c.name;
CREATE MATERIALIZED VIEW ft_mv AS SELECT count(*) AS n FROM ft_products;
CREATE SCHEMA "Ft Schema";
CREATE TABLE "Ft Schema"."Odd.Table" (id int);
CREATE FUNCTION ft_order_count() RETURNS bigint LANGUAGE sql STABLE
	AS 'SELECT count(*) FROM ft_orders';

-- The entries' tags, sorted.
CREATE FUNCTION pg_temp.tags() RETURNS TABLE (key text, tags text[]) LANGUAGE sql AS $$
	SELECT key, coalesce((SELECT array_agg(t ORDER BY t) FROM unnest(tags) t), '{}')
	FROM qcache_entries WHERE key LIKE 'ft:%' ORDER BY key
$$;

SELECT qcache_fetch('ft:table', 'SELECT id, price FROM ft_products ORDER BY id') IS NOT NULL,
       qcache_fetch('ft:given', 'SELECT id FROM ft_products ORDER BY id', 0,
                    ARRAY['mine', 'also-mine']) IS NOT NULL,
       qcache_fetch('ft:join', 'SELECT p.id, c.name FROM ft_products p
                                JOIN ft_categories c ON c.id = p.category_id ORDER BY 1') IS NOT NULL,
       qcache_fetch('ft:view', 'SELECT * FROM ft_v ORDER BY id') IS NOT NULL,
       qcache_fetch('ft:view-of-view', 'SELECT * FROM ft_vv ORDER BY id') IS NOT NULL,
       qcache_fetch('ft:stats', 'SELECT * FROM ft_stats ORDER BY name') IS NOT NULL,
       qcache_fetch('ft:sublink', 'SELECT id FROM ft_products p
                                   WHERE EXISTS (SELECT FROM ft_orders o WHERE o.product_id = p.id)
                                   ORDER BY id') IS NOT NULL,
       qcache_fetch('ft:cte', 'WITH c AS (SELECT * FROM ft_categories) SELECT count(*) FROM c') IS NOT NULL,
       qcache_fetch('ft:union', 'SELECT id FROM ft_products UNION SELECT id FROM ft_categories
                                 ORDER BY 1') IS NOT NULL,
       qcache_fetch('ft:scalar', 'SELECT (SELECT max(qty) FROM ft_orders) AS m') IS NOT NULL,
       qcache_fetch('ft:none', 'SELECT 1 AS one') IS NOT NULL,
       qcache_fetch('ft:schema', 'SELECT * FROM "Ft Schema"."Odd.Table"') IS NOT NULL,
       qcache_fetch('ft:mv', 'SELECT n FROM ft_mv') IS NOT NULL,
       qcache_fetch('ft:catalog', 'SELECT count(*) > 0 AS any FROM pg_class') IS NOT NULL,
       qcache_fetch('ft:function', 'SELECT ft_order_count() AS n') IS NOT NULL;
SELECT * FROM pg_temp.tags();

-- Queries whose plans read no row of a table still depend on it.
SELECT qcache_fetch('ft:false', 'SELECT id FROM ft_products WHERE false'),
       qcache_fetch('ft:limit0', 'SELECT id FROM ft_products LIMIT 0'),
       qcache_fetch('ft:const', 'SELECT id FROM ft_products WHERE 1 = 0 ORDER BY id'),
       qcache_fetch('ft:removed-join', 'SELECT p.id FROM ft_products p
                                        LEFT JOIN ft_categories c ON c.id = p.category_id
                                        WHERE p.id = 1');
SELECT * FROM pg_temp.tags() WHERE key IN ('ft:false', 'ft:limit0', 'ft:const', 'ft:removed-join');

--
-- A bare qcache_watch of the tables: every cached query over them,
-- through views too, sees committed writes.
--
SET client_min_messages = warning;
SELECT qcache_watch('ft_products');
RESET client_min_messages;
CREATE FUNCTION pg_temp.fetch_all() RETURNS TABLE (tbl jsonb, v jsonb, vv jsonb, stats jsonb)
LANGUAGE sql AS $$
	SELECT qcache_fetch('ft:table', 'SELECT id, price FROM ft_products ORDER BY id'),
	       qcache_fetch('ft:view', 'SELECT * FROM ft_v ORDER BY id'),
	       qcache_fetch('ft:view-of-view', 'SELECT * FROM ft_vv ORDER BY id'),
	       qcache_fetch('ft:stats', 'SELECT * FROM ft_stats ORDER BY name')
$$;
SELECT * FROM pg_temp.fetch_all();
SELECT qcache_reset_stats();
SELECT * FROM pg_temp.fetch_all();
SELECT hits, misses FROM qcache_stats;
UPDATE ft_products SET price = 11 WHERE id = 1;
SELECT * FROM pg_temp.fetch_all();
INSERT INTO ft_products VALUES (4, 2, 40);
SELECT * FROM pg_temp.fetch_all();
DELETE FROM ft_products WHERE id = 2;
SELECT * FROM pg_temp.fetch_all();
-- Inside the writing transaction the fetch sees the write, and afterwards
-- the committed state is what is served.
BEGIN;
UPDATE ft_products SET price = 1 WHERE id = 4;
SELECT * FROM pg_temp.fetch_all();
COMMIT;
SELECT * FROM pg_temp.fetch_all();
-- A rolled-back write: the cached results stay (and are hits).
SELECT qcache_reset_stats();
BEGIN;
UPDATE ft_products SET price = 1000;
ROLLBACK;
SELECT * FROM pg_temp.fetch_all();
SELECT hits, misses FROM qcache_stats;
-- Results of plans that read no row are invalidated too.
SELECT qcache_fetch('ft:false', 'SELECT id FROM ft_products WHERE false'),
       qcache_fetch('ft:limit0', 'SELECT id FROM ft_products LIMIT 0'),
       qcache_fetch('ft:const', 'SELECT id FROM ft_products WHERE 1 = 0 ORDER BY id'),
       qcache_fetch('ft:removed-join', 'SELECT p.id FROM ft_products p
                                        LEFT JOIN ft_categories c ON c.id = p.category_id
                                        WHERE p.id = 1');
-- (the keys and queries as a VALUES list: a table created here would be DDL,
-- which invalidates every fetch result of the database through the names
-- tag)
SELECT count(*) AS cached
FROM (VALUES
	('ft:false', 'SELECT id FROM ft_products WHERE false'),
	('ft:limit0', 'SELECT id FROM ft_products LIMIT 0'),
	('ft:const', 'SELECT id FROM ft_products WHERE 1 = 0 ORDER BY id'),
	('ft:removed-join', 'SELECT p.id FROM ft_products p
                                        LEFT JOIN ft_categories c ON c.id = p.category_id
                                        WHERE p.id = 1')) v(k, q)
WHERE qcache_fetch_cached(k, q) IS NOT NULL;
INSERT INTO ft_products VALUES (5, 1, 50);
SELECT k, qcache_fetch_cached(k, q) AS served
FROM (VALUES
	('ft:false', 'SELECT id FROM ft_products WHERE false'),
	('ft:limit0', 'SELECT id FROM ft_products LIMIT 0'),
	('ft:const', 'SELECT id FROM ft_products WHERE 1 = 0 ORDER BY id'),
	('ft:removed-join', 'SELECT p.id FROM ft_products p
                                        LEFT JOIN ft_categories c ON c.id = p.category_id
                                        WHERE p.id = 1')) v(k, q)
ORDER BY k;

-- The view's other table: watched too, its writes are seen as well.
SET client_min_messages = warning;
SELECT qcache_watch('ft_categories');
RESET client_min_messages;
SELECT qcache_fetch('ft:stats', 'SELECT * FROM ft_stats ORDER BY name') AS stats;
UPDATE ft_categories SET name = 'tools!' WHERE id = 1;
SELECT qcache_fetch('ft:stats', 'SELECT * FROM ft_stats ORDER BY name') AS stats;
-- TRUNCATE of a watched table.
TRUNCATE ft_orders;
SET client_min_messages = warning;
SELECT qcache_watch('ft_orders');
RESET client_min_messages;
SELECT qcache_fetch('ft:sublink', 'SELECT id FROM ft_products p
                                   WHERE EXISTS (SELECT FROM ft_orders o WHERE o.product_id = p.id)
                                   ORDER BY id') AS sublink;
INSERT INTO ft_orders VALUES (4, 1);
SELECT qcache_fetch('ft:sublink', 'SELECT id FROM ft_products p
                                   WHERE EXISTS (SELECT FROM ft_orders o WHERE o.product_id = p.id)
                                   ORDER BY id') AS sublink;
TRUNCATE ft_orders;
SELECT qcache_fetch('ft:sublink', 'SELECT id FROM ft_products p
                                   WHERE EXISTS (SELECT FROM ft_orders o WHERE o.product_id = p.id)
                                   ORDER BY id') AS sublink;

DROP FUNCTION ft_order_count();
DROP MATERIALIZED VIEW ft_mv;
DROP VIEW ft_stats, ft_vv, ft_v;
DROP TABLE ft_orders, ft_products, ft_categories;
DROP SCHEMA "Ft Schema" CASCADE;
SELECT qcache_clear() >= 0 AS cleared;
