--
-- errors: every argument error, with its SQLSTATE, and the limits on keys
-- and tags (the error names the limit).  An argument error changes nothing.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- Runs a statement and reports its SQLSTATE, message, detail and hint.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	det text;
	hnt text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
		hnt = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ': ' || msg ||
		coalesce(' | ' || nullif(det, ''), '') ||
		coalesce(' | ' || nullif(hnt, ''), '');
END
$$;

-- The errors as psql shows them.
SELECT qcache_set(NULL, '1');
SELECT qcache_set('err:k', NULL);
SELECT qcache_set('err:k', '1', -1);
SELECT qcache_set('err:k', '1', NULL, ARRAY['a', NULL]);
SELECT qcache_set('err:k', '1', NULL, '{{a,b},{c,d}}');

-- NULL arguments: 22004 (null_value_not_allowed).
SELECT pg_temp.try($$SELECT qcache_set(NULL, '1')$$);
SELECT pg_temp.try($$SELECT qcache_set(NULL::text, NULL::jsonb)$$);
SELECT pg_temp.try($$SELECT qcache_set('err:k', NULL)$$);
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', NULL, ARRAY[NULL::text])$$);
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', NULL, ARRAY['a', 'b', NULL])$$);
SELECT pg_temp.try($$SELECT qcache_invalidate(NULL)$$);
SELECT pg_temp.try($$SELECT qcache_invalidate_tag(NULL)$$);
SELECT pg_temp.try($$SELECT qcache_invalidate_prefix(NULL)$$);
-- (qcache_fetch with a NULL key derives the key from the query: SPEC 11)
SELECT pg_temp.try($$SELECT qcache_fetch(NULL, 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('err:k', NULL)$$);
SELECT pg_temp.try($$SELECT qcache_fetch('err:k', 'SELECT 1', NULL, ARRAY[NULL::text])$$);

-- The functions that only read return NULL for a NULL key.
SELECT qcache_get(NULL) IS NULL AS get_null;

-- A NULL ttl or NULL tags are not errors: default ttl, no tags.
SELECT pg_temp.try($$SELECT qcache_set('err:ok1', '1', NULL, NULL)$$);
SELECT pg_temp.try($$SELECT qcache_set('err:ok2', '1', 0, '{}')$$);
SELECT key, tags FROM qcache_entries WHERE key LIKE 'err:ok%' ORDER BY key;

-- A negative ttl: 22023 (invalid_parameter_value).
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', -1)$$);
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', -2147483648)$$);
SELECT pg_temp.try($$SELECT qcache_fetch('err:k', 'SELECT 1', -1)$$);

-- A multi-dimensional tags array: 2202E (array_subscript_error).
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', NULL, '{{a,b},{c,d}}')$$);
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', NULL, '{{a}}')$$);
SELECT pg_temp.try($$SELECT qcache_set('err:k', '1', NULL, '{{{a}}}')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('err:k', 'SELECT 1', NULL, '{{a},{b}}')$$);
-- An array with non-default bounds but one dimension is fine.
SELECT pg_temp.try($$SELECT qcache_set('err:bounds', '1', NULL, '[5:6]={x,y}'::text[])$$);
SELECT tags FROM qcache_entries WHERE key = 'err:bounds';

-- Key length: 8192 bytes works, 8193 is 54000 (program_limit_exceeded),
-- for every function that takes a key.
SELECT qcache_set(repeat('k', 8192), '"longest"');
SELECT qcache_get(repeat('k', 8192));
SELECT qcache_invalidate(repeat('k', 8192));
SELECT qcache_set(repeat('k', 8193), '1');
SELECT pg_temp.try($$SELECT qcache_set(repeat('k', 8193), '1')$$);
SELECT pg_temp.try($$SELECT qcache_get(repeat('k', 8193))$$);
SELECT pg_temp.try($$SELECT qcache_invalidate(repeat('k', 8193))$$);
SELECT pg_temp.try($$SELECT qcache_fetch(repeat('k', 8193), 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT qcache_set(repeat('k', 100000), '1')$$);
-- The limit is in bytes: 4096 two-byte characters fit, 4097 do not.
SELECT pg_temp.try($$SELECT qcache_set(repeat('é', 4096), '1')$$);
SELECT pg_temp.try($$SELECT qcache_set(repeat('é', 4097), '1')$$);
SELECT qcache_invalidate(repeat('é', 4096));

-- Tags: 64 work, 65 are 54000.
SELECT qcache_set('err:64tags', '1', NULL,
                  (SELECT array_agg('t' || g) FROM generate_series(1, 64) g));
SELECT cardinality(tags) FROM qcache_entries WHERE key = 'err:64tags';
SELECT qcache_set('err:65tags', '1', NULL,
                  (SELECT array_agg('t' || g) FROM generate_series(1, 65) g));
SELECT pg_temp.try($$SELECT qcache_fetch('err:65tags', 'SELECT 1', NULL,
                  (SELECT array_agg('t' || g) FROM generate_series(1, 65) g))$$);

-- Tag length: 512 bytes work, 513 are 54000.
SELECT qcache_set('err:longtag', '1', NULL, ARRAY[repeat('t', 512)]);
SELECT octet_length(tags[1]) FROM qcache_entries WHERE key = 'err:longtag';
SELECT qcache_set('err:longtag2', '1', NULL, ARRAY['short', repeat('t', 513)]);
SELECT pg_temp.try($$SELECT qcache_set('err:longtag2', '1', NULL, ARRAY[repeat('é', 257)])$$);
SELECT pg_temp.try($$SELECT qcache_fetch('err:longtag2', 'SELECT 1', NULL, ARRAY[repeat('t', 513)])$$);

-- An argument error stores nothing and leaves an existing entry alone.
SELECT qcache_set('err:keep', '"old"');
SELECT pg_temp.try($$SELECT qcache_set('err:keep', '"new"', -1)$$);
SELECT pg_temp.try($$SELECT qcache_set('err:keep', '"new"', NULL, ARRAY[NULL::text])$$);
SELECT pg_temp.try($$SELECT qcache_set('err:keep', '"new"', NULL, '{{a}}')$$);
SELECT pg_temp.try($$SELECT qcache_fetch('err:keep', 'SELECT 1', -1)$$);
SELECT qcache_get('err:keep');
SELECT qcache_get('err:k') IS NULL AS nothing_stored,
       qcache_get('err:65tags') IS NULL AS no_65,
       qcache_get('err:longtag2') IS NULL AS no_longtag2;

-- Errors leave the transaction aborted as usual, and the cache usable.
BEGIN;
SELECT qcache_set('err:tx', '1', -5);
SELECT qcache_get('err:keep');
ROLLBACK;
SELECT qcache_get('err:keep');

SELECT qcache_clear() > 0 AS cleared;
