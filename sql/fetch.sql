--
-- fetch: qcache_fetch, the read-through.  Rows come back as a jsonb array
-- of objects in the query's order; a hit does not run the query; only one
-- read-only SELECT is accepted, and anything else is rejected before it
-- runs; a failing query keeps its own error and caches nothing.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- Runs a statement and reports its SQLSTATE, message and detail.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	det text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END
$$;

CREATE TABLE fetch_t (id int PRIMARY KEY, name text, price numeric, active bool,
                      born date, extra jsonb);
INSERT INTO fetch_t VALUES
	(1, 'one', 1.50, true, '2024-01-02', '{"k": [1, 2]}'),
	(2, 'two', NULL, false, NULL, NULL),
	(3, 'three', 300, true, '1999-12-31', '"s"');
CREATE SEQUENCE fetch_seq;
-- ran(n): says when a query runs (a NOTICE each time it is evaluated: the
-- queries call it on a subquery, which the planner cannot fold, and plans
-- are kept), without writing anything.
CREATE FUNCTION ran(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RAISE NOTICE 'query ran (%)', n;
	RETURN n;
END
$$;

-- Rows as an array of objects, column names as keys, types as JSON types.
SELECT qcache_fetch('fetch:all', 'SELECT * FROM fetch_t ORDER BY id');
-- The order of the query is kept.
SELECT qcache_fetch('fetch:desc', 'SELECT id, name FROM fetch_t ORDER BY id DESC');
-- What was cached is what was returned.
SELECT qcache_fetch_cached('fetch:all', 'SELECT * FROM fetch_t ORDER BY id') =
       qcache_fetch('fetch:all', 'SELECT * FROM fetch_t ORDER BY id') AS same;
-- One row is still an array; no rows is the empty array, and is cached.
SELECT qcache_fetch('fetch:one', 'SELECT name FROM fetch_t WHERE id = 3');
SELECT qcache_fetch('fetch:none', 'SELECT * FROM fetch_t WHERE id < 0');
SELECT qcache_fetch_cached('fetch:none', 'SELECT * FROM fetch_t WHERE id < 0');
-- Expressions and column aliases.
SELECT qcache_fetch('fetch:expr', 'SELECT 1 + 1, ''x'' AS "Mixed Case", NULL::int AS n, ARRAY[1,2] AS arr');
-- VALUES, set operations, read-only WITH, a parenthesized query, TABLE.
SELECT qcache_fetch('fetch:values', 'VALUES (1, ''a''), (2, ''b'')');
SELECT qcache_fetch('fetch:union', 'SELECT 1 AS x UNION ALL SELECT 2 ORDER BY x DESC');
SELECT qcache_fetch('fetch:with', 'WITH w AS (SELECT id FROM fetch_t WHERE active) SELECT count(*) AS n FROM w');
SELECT qcache_fetch('fetch:paren', '(SELECT 7 AS seven)');
SELECT qcache_fetch('fetch:table', 'TABLE fetch_t') -> 0 -> 'id' AS first_id;
-- A trailing semicolon, comments and surrounding white space are fine.
SELECT qcache_fetch('fetch:semi', 'SELECT 1 AS a;');
SELECT qcache_fetch('fetch:semi2', E'  -- leading comment\n SELECT 2 AS a ; \n');
SELECT qcache_fetch('fetch:comment', 'SELECT 3 AS a -- trailing comment');
SELECT qcache_fetch('fetch:comment2', 'SELECT 4 AS a /* block */');

-- A hit does not run the query: it runs once for three calls.
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 1)) AS n')
FROM generate_series(1, 3);
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 1)) AS n');
-- A key names one query: another query under the same key runs, and is
-- cached beside the first; neither is served for the other.
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 42)) AS other');
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 42)) AS other');
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 1)) AS n');
-- A value that qcache_set stored is never served as a fetch result, and
-- qcache_get never returns a fetch result.
SELECT qcache_set('fetch:preset', '{"set": "by hand"}');
SELECT qcache_fetch('fetch:preset', 'SELECT ran((SELECT 2)) AS n');
SELECT qcache_fetch('fetch:preset', 'SELECT ran((SELECT 2)) AS n');
SELECT qcache_get('fetch:preset') AS get, qcache_get('fetch:seq') AS get_fetched;
-- After an invalidation the query runs again.
SELECT qcache_invalidate('fetch:seq');
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 1)) AS n');
SELECT qcache_fetch('fetch:seq', 'SELECT ran((SELECT 42)) AS other');
-- The cached value does not follow the table until it is invalidated.
UPDATE fetch_t SET name = 'uno' WHERE id = 1;
SELECT qcache_fetch('fetch:one-row', 'SELECT name FROM fetch_t WHERE id = 1');
UPDATE fetch_t SET name = 'eins' WHERE id = 1;
SELECT qcache_fetch('fetch:one-row', 'SELECT name FROM fetch_t WHERE id = 1');

-- ttl and tags, as for qcache_set.
SELECT qcache_fetch('fetch:ttl', 'SELECT 1 AS a', 30, ARRAY['fetch-tag', 'other']),
       qcache_fetch('fetch:ttl0', 'SELECT 1 AS a', 0, ARRAY['fetch-tag']),
       qcache_fetch('fetch:ttlnull', 'SELECT 1 AS a');
SELECT key, tags, expires - created AS lifetime
FROM qcache_entries WHERE key LIKE 'fetch:ttl%' ORDER BY key;
SELECT qcache_invalidate_tag('fetch-tag');
SELECT qcache_fetch('fetch:ttl1', 'SELECT ran((SELECT 3)) AS n', 1) AS first,
       qcache_fetch('fetch:ttl1', 'SELECT ran((SELECT 3)) AS n', 1) AS second;
SELECT pg_sleep(1.5);
SELECT qcache_fetch('fetch:ttl1', 'SELECT ran((SELECT 3)) AS n', 1) AS after_expiry;

--
-- Rejected before anything runs: 22023, whatever the cache holds.
--
SELECT qcache_fetch('fetch:bad', 'DELETE FROM fetch_t');
SELECT last_value AS seq_before FROM fetch_seq \gset
SELECT q, pg_temp.try(format('SELECT qcache_fetch(%L, %L)', 'fetch:bad', q)) AS result
FROM (VALUES
	('INSERT INTO fetch_t VALUES (10, ''ins'')'),
	('UPDATE fetch_t SET name = ''upd'''),
	('DELETE FROM fetch_t'),
	('TRUNCATE fetch_t'),
	('SELECT nextval(''fetch_seq''); SELECT 1'),
	('SELECT 1; DELETE FROM fetch_t'),
	('SELECT 1;; SELECT 2'),
	('SELECT nextval(''fetch_seq'') AS n INTO fetch_into'),
	('CREATE TABLE fetch_ctas AS SELECT nextval(''fetch_seq'')'),
	('WITH d AS (DELETE FROM fetch_t RETURNING *) SELECT * FROM d'),
	('WITH i AS (INSERT INTO fetch_t VALUES (11, ''w'') RETURNING *) SELECT * FROM i'),
	('WITH u AS (UPDATE fetch_t SET name = ''w'' RETURNING *) SELECT count(*) FROM u'),
	('WITH s AS (SELECT 1) DELETE FROM fetch_t'),
	('SELECT * FROM fetch_t FOR UPDATE'),
	('SELECT * FROM fetch_t FOR NO KEY UPDATE'),
	('SELECT * FROM fetch_t FOR SHARE'),
	('SELECT * FROM fetch_t FOR KEY SHARE'),
	('SELECT * FROM fetch_t FOR UPDATE SKIP LOCKED'),
	('EXPLAIN ANALYZE SELECT nextval(''fetch_seq'')'),
	('DO $$BEGIN PERFORM nextval(''fetch_seq''); END$$'),
	('COPY fetch_t TO STDOUT'),
	('SET search_path = nowhere'),
	('VACUUM fetch_t'),
	(''),
	('   '),
	(';'),
	('-- only a comment')
) AS t(q);
-- Nothing ran: the table, the sequence and the catalogs are unchanged,
-- and nothing was cached.
SELECT id, name FROM fetch_t ORDER BY id;
SELECT last_value = :seq_before AS seq_unchanged FROM fetch_seq;
SELECT to_regclass('fetch_into') IS NULL AS no_into_table,
       to_regclass('fetch_ctas') IS NULL AS no_ctas_table;
SHOW search_path;
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'fetch:bad') AS nothing_cached;
-- The check is made on hits too.
SELECT qcache_fetch('fetch:hit', 'SELECT 1 AS a');
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:hit', 'DELETE FROM fetch_t')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:hit', 'SELECT 1; SELECT 2')$$);
-- A FOR UPDATE hidden in a subquery or a WITH query is refused too, before
-- it locks anything, with the same SQLSTATE as at the top level (only the
-- SQLSTATE is shown).
SELECT left(pg_temp.try($$SELECT qcache_fetch('fetch:bad', 'SELECT * FROM (SELECT * FROM fetch_t FOR UPDATE) s')$$), 5) AS sqlstate;
SELECT left(pg_temp.try($$SELECT qcache_fetch('fetch:bad', 'WITH l AS (SELECT * FROM fetch_t FOR SHARE) SELECT * FROM l')$$), 5) AS sqlstate;
SELECT left(pg_temp.try($$SELECT qcache_fetch('fetch:bad', 'SELECT * FROM fetch_t WHERE id IN (SELECT id FROM fetch_t FOR KEY SHARE)')$$), 5) AS sqlstate;
-- A data-modifying WITH below the top level: refused by qcache's own
-- check of the whole parse tree, before anything runs.
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:bad', 'SELECT * FROM (WITH d AS (DELETE FROM fetch_t RETURNING *) SELECT * FROM d) s')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:bad', 'WITH w AS (WITH d AS (DELETE FROM fetch_t RETURNING *) SELECT * FROM d) SELECT * FROM w')$$);
SELECT count(*) AS rows_left FROM fetch_t;
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'fetch:bad') AS nothing_cached;

--
-- A query that fails keeps its own error and caches nothing.
--
SELECT qcache_fetch('fetch:fail', 'SELECT 1 / 0 AS x');
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:fail', 'SELECT 1 / 0 AS x')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:fail', 'SELECT * FROM fetch_no_such_table')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:fail', 'SELECT no_such_column FROM fetch_t')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:fail', 'SELEC 1')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:fail', 'SELECT $1')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('fetch:fail', 'SELECT (''x'' || ran((SELECT 5)))::int')$$);
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'fetch:fail') AS nothing_cached;
SELECT count(*) FROM qcache_entries WHERE key = 'fetch:fail';
-- An error in the query aborts the caller's transaction as usual; the
-- cache has nothing from it.
BEGIN;
SELECT qcache_fetch('fetch:fail', 'SELECT id / (id - 2) FROM fetch_t ORDER BY id');
ROLLBACK;
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'fetch:fail') AS nothing_cached;

--
-- A result too large to cache is still returned (not an error).
--
SELECT qcache_reset_stats();
SET qcache.max_entry_size = 100;
SELECT jsonb_array_length(qcache_fetch('fetch:large',
	'SELECT g, repeat(''x'', 20) AS pad FROM generate_series(1, 20) g')) AS rows_returned;
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'fetch:large') AS not_cached;
SELECT sets, sets_rejected FROM qcache_stats;
-- Each call runs the query again.
SELECT qcache_fetch('fetch:large-seq',
	'SELECT ran((SELECT 6)) AS n, repeat(''x'', 200) AS pad') -> 0 -> 'n' AS n
FROM generate_series(1, 2);
RESET qcache.max_entry_size;

-- A fetch in a SELECT list over many rows: one run per distinct key.
SELECT qcache_clear() >= 0 AS cleared;
SELECT g % 2 AS k, qcache_fetch('fetch:mod:' || g % 2,
                                'SELECT ran((SELECT 7)) AS n') -> 0 -> 'n' AS n
FROM generate_series(1, 6) g ORDER BY g;

-- The query runs with the caller's snapshot: it sees the caller's own
-- uncommitted rows.
BEGIN;
INSERT INTO fetch_t VALUES (4, 'four', 4, true, NULL, NULL);
SELECT qcache_fetch('fetch:own', 'SELECT count(*) AS n FROM fetch_t');
ROLLBACK;

DROP TABLE fetch_t;
DROP SEQUENCE fetch_seq;
DROP FUNCTION ran(int);
SELECT qcache_clear() > 0 AS cleared;
