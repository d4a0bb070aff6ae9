--
-- fetch_json: qcache_fetch_json (1.2), the read-through kept and returned
-- as JSON text.  Same rows and same text as qcache_fetch(...)::text, type
-- json; a hit does not run the query; the two functions read each other's
-- entries; the same checks and errors as qcache_fetch;
-- revoked from PUBLIC; table tags and invalidation work alike.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
	RETURN SQLSTATE || ': ' || msg;
END
$$;

CREATE TABLE fj_t (id int PRIMARY KEY, name text, price numeric, extra jsonb);
INSERT INTO fj_t VALUES (1, 'one', 1.50, '{"k": [1, 2]}'), (2, 'two', NULL, NULL),
	(3, 'thr"ee', 300, '"s"');
-- ran(n): says when a query runs (a NOTICE each time it is evaluated: the
-- queries call it on a subquery, which the planner cannot fold, and plans
-- are kept), without writing anything.
CREATE FUNCTION ran(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RAISE NOTICE 'query ran (%)', n;
	RETURN n;
END
$$;

-- The type is json, and the text is what qcache_fetch's jsonb prints.
SELECT pg_typeof(qcache_fetch_json('fj:all', 'SELECT * FROM fj_t ORDER BY id'));
SELECT qcache_fetch_json('fj:all', 'SELECT * FROM fj_t ORDER BY id');
SELECT qcache_fetch_json('fj:all', 'SELECT * FROM fj_t ORDER BY id')::text =
       qcache_fetch('fj:other', 'SELECT * FROM fj_t ORDER BY id')::text AS same_text;
-- An empty result.
SELECT qcache_fetch_json('fj:none', 'SELECT * FROM fj_t WHERE false');

-- A hit does not run the query.
SELECT qcache_fetch_json('fj:seq', 'SELECT ran((SELECT 1)) AS n') AS first,
       qcache_fetch_json('fj:seq', 'SELECT ran((SELECT 1)) AS n') AS second;

-- The other readers of the same entry get jsonb.
SELECT qcache_fetch_cached('fj:seq', 'SELECT ran((SELECT 1)) AS n') AS cached,
       pg_typeof(qcache_fetch_cached('fj:seq', 'SELECT ran((SELECT 1)) AS n')) AS type;
SELECT qcache_fetch('fj:seq', 'SELECT ran((SELECT 1)) AS n') AS fetch;
-- And qcache_fetch_json reads what qcache_fetch stored.
SELECT qcache_fetch('fj:jsonb', 'SELECT 1 AS a, ''x'' AS b') AS jsonb_entry,
       qcache_fetch_json('fj:jsonb', 'SELECT 1 AS a, ''x'' AS b') AS json_of_it;

-- Table tags: a watched write invalidates it like qcache_fetch.
SET client_min_messages = warning;
SELECT qcache_watch('fj_t');
RESET client_min_messages;
SELECT tags FROM qcache_entries WHERE key = 'fj:all';
UPDATE fj_t SET price = 2 WHERE id = 1;
SELECT qcache_fetch_cached('fj:all', 'SELECT * FROM fj_t ORDER BY id') IS NULL AS invalidated;
SELECT qcache_fetch_json('fj:all', 'SELECT id, price FROM fj_t ORDER BY id');

-- The same checks and errors as qcache_fetch.
SELECT pg_temp.try($$SELECT qcache_fetch_json(NULL, 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT qcache_fetch_json('k', NULL)$$);
SELECT pg_temp.try($$SELECT qcache_fetch_json('k', 'DELETE FROM fj_t')$$);
SELECT pg_temp.try($$SELECT qcache_fetch_json('k', 'SELECT 1; SELECT 2')$$);
SELECT pg_temp.try($$SELECT qcache_fetch_json('k', 'SELECT 1', -1)$$);
SELECT pg_temp.try($$SELECT qcache_fetch_json('k', 'SELECT * FROM no_such_table')$$);
SELECT count(*) AS cached_after_errors FROM qcache_entries WHERE key = 'k';

-- Revoked from PUBLIC, like qcache_fetch.
SELECT has_function_privilege('public', 'qcache_fetch_json(text, text, integer, text[], text[], boolean, integer, integer)', 'execute') AS public_may;

SELECT qcache_unwatch('fj_t');
DROP TABLE fj_t;
DROP FUNCTION ran(int);
