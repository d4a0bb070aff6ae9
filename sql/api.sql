--
-- api: the basic SQL interface -- set, get, invalidate, overwrite, the
-- kinds of jsonb values, NULL handling of the reading functions, and the
-- columns of qcache_stats, qcache_entries and qcache_redis.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;

-- The objects the extension installs.
SELECT p.proname,
       CASE WHEN p.proname IN ('qcache_stats', 'qcache_entries', 'qcache_namespaces', 'qcache_redis_status')
            THEN '(OUT columns, below)'
            ELSE pg_get_function_arguments(p.oid) END AS args,
       pg_get_function_result(p.oid) AS result, p.proisstrict AS strict
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qcache')
ORDER BY 1;
SELECT c.relname, c.relkind
FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qcache')
ORDER BY 1;

-- A miss, then a set and a hit.
SELECT qcache_get('api:a') IS NULL AS miss;
SELECT qcache_set('api:a', '{"id": 1, "name": "alice"}');
SELECT qcache_get('api:a');
SELECT qcache_get('api:a') -> 'name' AS name;

-- Every kind of jsonb value round-trips unchanged.
SELECT v, qcache_set('api:v' || i, v) AS stored
FROM (VALUES (1, '{"a": [1, 2, {"b": null}], "c": "x"}'::jsonb),
             (2, '[1, "two", 3.5, true, null]'),
             (3, '"just a string"'),
             (4, '42'),
             (5, '-0.000001'),
             (6, 'true'),
             (7, 'null'),
             (8, '{}'),
             (9, '[]'),
             (10, '"unicode: \u00e9\u4e2d\ud83d\ude00"')) AS t(i, v)
ORDER BY i;
SELECT i, qcache_get('api:v' || i) AS got,
       qcache_get('api:v' || i) = v AS same
FROM (VALUES (1, '{"a": [1, 2, {"b": null}], "c": "x"}'::jsonb),
             (2, '[1, "two", 3.5, true, null]'),
             (3, '"just a string"'),
             (4, '42'),
             (5, '-0.000001'),
             (6, 'true'),
             (7, 'null'),
             (8, '{}'),
             (9, '[]'),
             (10, '"unicode: \u00e9\u4e2d\ud83d\ude00"')) AS t(i, v)
ORDER BY i;

-- The JSON value null is a hit that returns 'null', not a SQL NULL.
SELECT qcache_get('api:v7') IS NULL AS sql_null, qcache_get('api:v7') = 'null' AS json_null;

-- A value large enough to be stored out of line (TOASTed) round-trips.
CREATE TEMP TABLE api_big AS
  SELECT jsonb_agg(jsonb_build_object('i', g, 'pad', repeat('x', 50))) AS v
  FROM generate_series(1, 2000) g;
SELECT pg_column_size(v) < octet_length(v::text) AS compressed FROM api_big;
SELECT qcache_set('api:big', v) FROM api_big;
SELECT qcache_get('api:big') = v AS same, jsonb_array_length(qcache_get('api:big')) AS n
FROM api_big;

-- Keys are exact: case, spaces and similar keys are different keys.
SELECT qcache_set('api:Key', '"upper"'), qcache_set('api:key', '"lower"'),
       qcache_set('api:key ', '"space"');
SELECT qcache_get('api:Key') AS upper_k, qcache_get('api:key') AS lower_k,
       qcache_get('api:key ') AS space_k, qcache_get('api:KEY') AS other_k;

-- The empty string is a key like any other.
SELECT qcache_set('', '"empty key"');
SELECT qcache_get('');

-- Multibyte keys.
SELECT qcache_set('api:clé:日本', '"mb"');
SELECT qcache_get('api:clé:日本'), qcache_get('api:cle:日本') AS other;

-- Overwrite: the last set wins, and replaces (one entry, not two).
SELECT qcache_set('api:over', '1');
SELECT qcache_set('api:over', '2');
SELECT qcache_get('api:over');
SELECT count(*) FROM qcache_entries WHERE key = 'api:over';

-- Invalidate: true when an entry was removed, false otherwise.
SELECT qcache_invalidate('api:over');
SELECT qcache_get('api:over') IS NULL AS miss;
SELECT qcache_invalidate('api:over');
SELECT qcache_invalidate('api:never-set');
-- Invalidating one key leaves the others.
SELECT qcache_get('api:a') IS NOT NULL AS still_there;

-- The reading functions answer NULL to a NULL key.
SELECT qcache_get(NULL) IS NULL AS null_get;

-- A set after an invalidate stores again.
SELECT qcache_set('api:over', '3'), qcache_get('api:over');

-- qcache_entries: the entries of this database, with their metadata.
SELECT key, tags, size > 0 AS has_size, created <= now() AS created_ok,
       hits
FROM qcache_entries
WHERE key LIKE 'api:v%' OR key = 'api:a'
ORDER BY key;
-- The function and the view agree.
SELECT (SELECT count(*) FROM qcache_entries()) = (SELECT count(*) FROM qcache_entries) AS same;
-- Columns of the views.
SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute WHERE attrelid = 'qcache_entries'::regclass AND attnum > 0
ORDER BY attnum;
SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute WHERE attrelid = 'qcache_stats'::regclass AND attnum > 0
ORDER BY attnum;
SELECT count(*) FROM qcache_stats;
SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute WHERE attrelid = 'qcache_redis'::regclass AND attnum > 0
ORDER BY attnum;
-- Without a Redis level: off, owing nothing.
SELECT state, owed, owes_all, serving, last_error FROM qcache_redis;

-- The hit counter of an entry counts its hits.
SELECT qcache_set('api:hits', '1');
SELECT qcache_get('api:hits') FROM generate_series(1, 5);
SELECT hits FROM qcache_entries WHERE key = 'api:hits';

-- A larger value takes more room.
SELECT qcache_set('api:small', '1'), qcache_set('api:large', to_jsonb(repeat('x', 1000)));
SELECT (SELECT size FROM qcache_entries WHERE key = 'api:large') -
       (SELECT size FROM qcache_entries WHERE key = 'api:small') > 900 AS larger;

-- Inside a transaction that rolls back, sets are not undone (the cache is
-- not transactional), and the transaction itself is unharmed.
BEGIN;
SELECT qcache_set('api:tx', '"in tx"');
ROLLBACK;
SELECT qcache_get('api:tx');

-- qcache_clear removes everything of this database and says how many.
SELECT count(*) AS n_before FROM qcache_entries \gset
SELECT :n_before > 20 AS many;
SELECT qcache_clear() = :n_before AS clear_counts;
SELECT count(*) FROM qcache_entries;
SELECT qcache_clear();
SELECT qcache_get('api:a') IS NULL AS miss_after_clear;
DROP TABLE api_big;
