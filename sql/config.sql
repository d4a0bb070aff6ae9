--
-- config: the GUCs.  qcache.max_entry_size (a larger value is not cached:
-- false, counted, not an error, the key's previous entry removed),
-- qcache.enabled (off: gets miss, sets store nothing, fetch runs its query),
-- and the postmaster-only settings.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;

-- The GUCs of the L1 cache, with their context and unit.
SELECT name, context, unit, vartype
FROM pg_settings
WHERE name IN ('qcache.default_ttl', 'qcache.enabled', 'qcache.max_entries',
               'qcache.max_entry_size', 'qcache.memory')
ORDER BY name;
SHOW qcache.max_entry_size;
SHOW qcache.enabled;
-- The prefix is reserved: a misspelt setting is an error.
SET qcache.enable = off;
-- Postmaster settings cannot change in a session.
SET qcache.memory = '64MB';
SET qcache.max_entries = 100;
-- bytes_limit is qcache.memory.
SELECT bytes_limit = pg_size_bytes(current_setting('qcache.memory')) AS limit_is_memory
FROM qcache_stats;

--
-- qcache.max_entry_size
--
SELECT qcache_reset_stats();
SET qcache.max_entry_size = 200;
SHOW qcache.max_entry_size;
SELECT qcache_set('cfg:small', to_jsonb(repeat('s', 50))) AS small_stored;
SELECT qcache_set('cfg:big', to_jsonb(repeat('b', 500))) AS big_stored;
SELECT qcache_get('cfg:big') IS NULL AS big_miss, qcache_get('cfg:small') IS NOT NULL AS small_hit;
SELECT sets, sets_rejected FROM qcache_stats;
-- A rejected set removes the key's previous entry: the old value is not
-- served after a set that did not take.
SELECT qcache_set('cfg:grow', '"small"');
SELECT qcache_set('cfg:grow', to_jsonb(repeat('g', 500))) AS grown_stored;
SELECT qcache_get('cfg:grow') IS NULL AS old_value_gone;
SELECT count(*) FROM qcache_entries WHERE key = 'cfg:grow';
SELECT sets, sets_rejected FROM qcache_stats;
-- A rejection inside a transaction leaves it unharmed.
BEGIN;
SELECT qcache_set('cfg:tx', to_jsonb(repeat('t', 500))) AS stored;
SELECT 1 AS still_usable;
COMMIT;

-- The limit applies to the stored jsonb value's size in bytes: a value of
-- exactly the limit is cached, one byte over is not.
DO $$
DECLARE
	v jsonb := to_jsonb(repeat('e', 100));
	n int := pg_column_size(v);
BEGIN
	PERFORM set_config('qcache.max_entry_size', n::text, false);
	RAISE NOTICE 'at the limit: %', qcache_set('cfg:edge', v);
	PERFORM set_config('qcache.max_entry_size', (n - 1)::text, false);
	RAISE NOTICE 'one byte over: %', qcache_set('cfg:edge', v);
	RAISE NOTICE 'entry left: %', qcache_get('cfg:edge') IS NOT NULL;
END
$$;

-- The setting takes units, and has a lower bound.
SET qcache.max_entry_size = '1kB';
SHOW qcache.max_entry_size;
SET qcache.max_entry_size = 10;
RESET qcache.max_entry_size;
SHOW qcache.max_entry_size;
-- With the default limit a 500-byte value is cached again.
SELECT qcache_set('cfg:big', to_jsonb(repeat('b', 500))) AS big_stored;

--
-- qcache.enabled
--
SELECT qcache_clear() >= 0 AS cleared;
SELECT qcache_set('cfg:kept', '"kept"'), qcache_set('cfg:replaced', '"old"');
SELECT qcache_reset_stats();
SET qcache.enabled = off;
-- Gets miss, even of present keys, and count as misses.
SELECT qcache_get('cfg:kept') IS NULL AS miss_when_off;
-- Sets return false and store nothing; a set removes the key's old entry.
SELECT qcache_set('cfg:new', '"new"') AS stored_when_off;
SELECT qcache_set('cfg:replaced', '"new"') AS replaced_when_off;
SELECT key FROM qcache_entries WHERE key LIKE 'cfg:%' ORDER BY key;
-- qcache_fetch runs its query every time, and stores nothing.
CREATE FUNCTION cfg_ran(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RAISE NOTICE 'query ran (%)', n;
	RETURN n;
END
$$;
SELECT qcache_fetch('cfg:fetch', 'SELECT cfg_ran((SELECT 1)) AS n') FROM generate_series(1, 3);
SELECT count(*) FROM qcache_entries WHERE key = 'cfg:fetch';
-- Invalidation still works while disabled.
RESET qcache.enabled;
SELECT qcache_set('cfg:inv', '1');
SET qcache.enabled = off;
SELECT qcache_invalidate('cfg:inv');
SELECT hits, misses, sets FROM qcache_stats;
-- On again: what was kept is served again, what was replaced is gone.
RESET qcache.enabled;
SELECT qcache_get('cfg:kept') AS kept, qcache_get('cfg:replaced') IS NULL AS replaced_gone,
       qcache_get('cfg:new') IS NULL AS new_absent;
-- SET LOCAL turns it off for one transaction.
BEGIN;
SET LOCAL qcache.enabled = off;
SELECT qcache_get('cfg:kept') IS NULL AS miss_local;
COMMIT;
SELECT qcache_get('cfg:kept') AS kept_again;

DROP FUNCTION cfg_ran(int);
SELECT qcache_clear() > 0 AS cleared;
