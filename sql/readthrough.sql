--
-- readthrough (1.3, SPEC section 11): parameters bound as values, keys
-- derived from the query and its parameters, typed rows, entries that
-- depend on the given tags only, a lookup that tells a miss from a cached
-- null, leases, TTL jitter.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

CREATE FUNCTION rt_try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
	h text;
BEGIN
	EXECUTE q INTO r;
	RETURN 'ok: ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | hint: ' || nullif(h, ''), '');
END
$$;
-- ran(n): a NOTICE each time a query calling it runs
CREATE FUNCTION rt_ran(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RAISE NOTICE 'query ran (%)', n;
	RETURN n;
END
$$;

CREATE TABLE rt_products (id int PRIMARY KEY, category_id int, name text,
                          price numeric, big bigint, at timestamptz);
INSERT INTO rt_products VALUES
	(1, 7, 'pen', 2.50, 9007199254740993, '2024-01-02 03:04:05.123456+00'),
	(2, 7, 'ink', 10.00, -1, '2024-06-30 23:59:59+00'),
	(3, 9, 'pad', 4.10, 0, NULL);

--
-- Parameters: $1... bound as values, of the types PostgreSQL infers.
--
SELECT qcache_fetch('rt:p', 'SELECT name, rt_ran((SELECT 1)) FROM rt_products WHERE id = $1',
                    params => ARRAY['1']) AS id1;
SELECT qcache_fetch('rt:p', 'SELECT name, rt_ran((SELECT 1)) FROM rt_products WHERE id = $1',
                    params => ARRAY['1']) AS id1_hit;
-- another value is another entry under the same key
SELECT qcache_fetch('rt:p', 'SELECT name, rt_ran((SELECT 1)) FROM rt_products WHERE id = $1',
                    params => ARRAY['2']) AS id2;
-- a value is a value: no SQL injection through it
SELECT qcache_fetch('rt:p', 'SELECT count(*) AS n FROM rt_products WHERE name = $1',
                    params => ARRAY['x'' OR ''1''=''1']) AS injected;
-- types: numeric, text, timestamptz, several parameters, a NULL one
SELECT qcache_fetch(NULL, 'SELECT id FROM rt_products WHERE price > $1 AND category_id = $2 ORDER BY id',
                    params => ARRAY['3', '7']) AS two_params,
       qcache_fetch(NULL, 'SELECT count(*) AS n FROM rt_products WHERE at < $1',
                    params => ARRAY['2024-03-01 00:00+00']) AS ts_param,
       qcache_fetch(NULL, 'SELECT $1::int IS NULL AS is_null', params => ARRAY[NULL]) AS null_param,
       qcache_fetch(NULL, 'SELECT $1 AS untyped', params => ARRAY['as text']) AS untyped;
-- qcache_fetch_json and qcache_fetch_cached take them too
SELECT qcache_fetch_json('rt:j', 'SELECT name FROM rt_products WHERE id = $1', params => ARRAY['3']) AS json,
       qcache_fetch_cached('rt:j', 'SELECT name FROM rt_products WHERE id = $1', ARRAY['3']) AS cached,
       qcache_fetch_cached('rt:j', 'SELECT name FROM rt_products WHERE id = $1', ARRAY['1']) AS other_value;
-- a NULL key is derived from the query and the parameters
SELECT key FROM qcache_entries WHERE key LIKE 'q:%' ORDER BY key LIMIT 1 \gset
SELECT length(:'key') = 18 AS derived_key_shape;
-- errors: the count must match, on hits too; a value must fit its type
SELECT rt_try($$SELECT qcache_fetch('rt:p', 'SELECT name FROM rt_products WHERE id = $1')$$) AS missing;
SELECT rt_try($$SELECT qcache_fetch('rt:p', 'SELECT name, rt_ran((SELECT 1)) FROM rt_products WHERE id = $1', params => ARRAY['1', '2'])$$) AS too_many;
SELECT rt_try($$SELECT qcache_fetch('rt:p', 'SELECT 1 AS one', params => ARRAY['1'])$$) AS none_expected;
SELECT rt_try($$SELECT qcache_fetch('rt:p', 'SELECT name FROM rt_products WHERE id = $1', params => ARRAY['one'])$$) AS bad_value;
SELECT rt_try($$SELECT qcache_fetch('rt:p', 'SELECT $101 AS x')$$) AS too_high;
SELECT rt_try($$SELECT qcache_fetch('rt:p', 'SELECT 1', params => ARRAY[ARRAY['1']])$$) AS two_dims;
-- a NULL query is still an error; a NULL key with no query too
SELECT rt_try($$SELECT qcache_fetch(NULL, NULL)$$) AS null_query;

--
-- One column name, one key: a duplicate is an error, not a dropped column.
--
SELECT rt_try($$SELECT qcache_fetch('rt:dup', 'SELECT 1 AS id, 2 AS id')$$) AS duplicate;
SELECT rt_try($$SELECT qcache_fetch('rt:dup', 'SELECT p.id, q.id FROM rt_products p JOIN rt_products q USING (category_id)')$$) AS duplicate_join;

--
-- Typed rows: exact numeric, bigint and timestamptz; a cached function.
--
CREATE TYPE rt_row AS (id int, name text, price numeric, big bigint, at timestamptz);
SELECT * FROM qcache_fetch_rows(NULL::rt_row, 'rt:rows',
	'SELECT id, name, price, big, at FROM rt_products WHERE category_id = $1 ORDER BY id',
	params => ARRAY['7']);
SELECT price = 2.50 AND scale(price) = 2 AS numeric_exact, big = 9007199254740993 AS bigint_exact,
       at = '2024-01-02 03:04:05.123456+00' AS timestamp_exact
FROM qcache_fetch_rows(NULL::rt_row, 'rt:rows',
	'SELECT id, name, price, big, at FROM rt_products WHERE category_id = $1 ORDER BY id',
	params => ARRAY['7'])
WHERE id = 1;
CREATE FUNCTION rt_category(cat int) RETURNS SETOF rt_row LANGUAGE sql STABLE AS $$
	SELECT * FROM qcache_fetch_rows(NULL::rt_row, NULL,
		'SELECT id, name, price, big, at FROM rt_products WHERE category_id = $1 ORDER BY id',
		300, ARRAY['category:' || cat], ARRAY[cat::text])
$$;
SELECT id, name FROM rt_category(9);
SELECT id, name FROM rt_category(7);

--
-- table_tags => false: the entry depends on the given tags only.
--
SELECT qcache_fetch('rt:own', 'SELECT count(*) AS n, rt_ran((SELECT 2)) FROM rt_products WHERE category_id = $1',
                    0, ARRAY['category:7'], ARRAY['7'], table_tags => false) AS own_tags;
SELECT tags FROM qcache_entries WHERE key = 'rt:own';
-- with table tags (the default), the table's tag is there
SELECT qcache_fetch('rt:tables', 'SELECT count(*) AS n FROM rt_products', 0) AS with_tables;
SELECT tags FROM qcache_entries WHERE key = 'rt:tables';
SELECT qcache_invalidate_tag('table:public.rt_products') AS removed_by_table_tag;
SELECT qcache_fetch('rt:own', 'SELECT count(*) AS n, rt_ran((SELECT 2)) FROM rt_products WHERE category_id = $1',
                    0, ARRAY['category:7'], ARRAY['7'], table_tags => false) AS own_tags_hit;
SELECT qcache_invalidate_tag('category:7') AS removed_by_own_tag;

--
-- qcache_lookup: a miss, a cached JSON null, a value.
--
SELECT qcache_set('rt:null', 'null') AS set_null;
SELECT * FROM qcache_lookup('rt:absent');
SELECT * FROM qcache_lookup('rt:null');
SELECT qcache_set('rt:v', '{"a": 1}') AS set_v;
SELECT * FROM qcache_lookup('rt:v');

--
-- Leases: one caller gets the token, the others NULL while it is held; a
-- set with the token stores, and gives the lease back.
--
SELECT qcache_lease('rt:lease') IS NOT NULL AS first_gets_it,
       qcache_lease('rt:lease') IS NULL AS second_waits;
BEGIN;
SELECT qcache_lease('rt:lease2') AS token \gset
COMMIT;
SELECT qcache_set('rt:lease2', '"computed"', 60, ARRAY['lease-tag'], :token) AS stored_with_token,
       qcache_get('rt:lease2') AS value,
       qcache_lease('rt:lease2') IS NOT NULL AS lease_given_back;
-- a write that invalidates the value's tag after the token: refused
BEGIN;
SELECT qcache_lease('rt:lease3') AS token3 \gset
COMMIT;
CREATE TABLE rt_w (id int);
SELECT qcache_watch('rt_w', 'lease-tag3');
INSERT INTO rt_w VALUES (1);
SELECT qcache_set('rt:lease3', '"stale"', 60, ARRAY['lease-tag3'], :token3) AS stale_refused,
       qcache_get('rt:lease3') AS value3;
-- a token of another key, or one already used: an error
BEGIN;
SELECT qcache_lease('rt:lease4') AS token4 \gset
COMMIT;
SELECT rt_try(format($$SELECT qcache_set('rt:other', '1', 60, NULL, %s)$$, :token4)) AS other_key;
SELECT qcache_set('rt:lease4', '1', 60, NULL, :token4) AS used_once;
SELECT rt_try(format($$SELECT qcache_set('rt:lease4', '2', 60, NULL, %s)$$, :token4)) AS used_twice;
-- a token not from qcache_lease: an error with a hint
SELECT rt_try($$SELECT qcache_set('rt:x', '1', 60, NULL, 1)$$) AS old_token;
SELECT rt_try(format($$SELECT qcache_set('rt:x', '1', 60, NULL, %s)$$,
                     (extract(epoch FROM now() - '2000-01-01'::timestamptz) * 1e6)::bigint + 3600000000)) AS future_token;
SELECT rt_try($$SELECT qcache_lease('rt:x', 0)$$) AS zero_lease;

--
-- Past its ttl, a value stored with stale_ttl is served only to callers
-- that allow staleness: the others recompute.
--
SELECT qcache_fetch('rt:swr', 'SELECT rt_ran((SELECT 3)) AS v', 1, stale_ttl => 600) AS stored;
SELECT pg_sleep(1.2);
SELECT qcache_fetch_cached('rt:swr', 'SELECT rt_ran((SELECT 3)) AS v') AS cached_past_ttl;
SELECT qcache_fetch('rt:swr', 'SELECT rt_ran((SELECT 3)) AS v', 1) AS not_opted_in;

--
-- qcache.ttl_jitter: shortens TTLs by up to the percentage, never lengthens.
--
SET qcache.ttl_jitter = 50;
SELECT bool_and(qcache_set('rt:jit:' || g, '1', 100)) AS set FROM generate_series(1, 50) g;
SELECT min(expires - created) >= interval '50 s' AS not_below_half,
       max(expires - created) <= interval '100 s' AS not_above_ttl,
       count(DISTINCT expires - created) > 1 AS spread
FROM qcache_entries WHERE key LIKE 'rt:jit:%';
RESET qcache.ttl_jitter;
SELECT rt_try($$SET qcache.ttl_jitter = 101$$) AS over_100;

DROP FUNCTION rt_category(int);
DROP TYPE rt_row;
DROP TABLE rt_products, rt_w;
DROP FUNCTION rt_try(text), rt_ran(int);
SELECT qcache_clear() >= 0 AS cleared;
