--
-- eviction: a full cache never fails a set; it evicts to stay under
-- qcache.memory and qcache.max_entries, and counts evictions_memory.  A
-- value that cannot be stored even after eviction makes qcache_set return
-- false (counted in sets_rejected), not an error.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
SELECT qcache_reset_stats();
SELECT entries AS e0, bytes_used AS b0 FROM qcache_stats \gset

-- More bytes than qcache.memory: 400 values of 100 kB.
SELECT pg_size_bytes(current_setting('qcache.memory')) < 400 * 100000 AS overfills;
SELECT count(*) FILTER (WHERE qcache_set('ev:big:' || g, to_jsonb(repeat('x', 100000) || g), 0))
       AS stored
FROM generate_series(1, 400) g;
SELECT bytes_used <= bytes_limit AS within_memory, entries < 400 AS some_evicted,
       evictions_memory > 0 AS evictions_counted,
       evictions_memory = 400 - (entries - :e0) AS every_eviction_counted,
       sets, sets_rejected
FROM qcache_stats;
-- The newest entry is there, and every listed entry is readable.
SELECT qcache_get('ev:big:400') = to_jsonb(repeat('x', 100000) || 400) AS newest_kept;
SELECT bool_and(qcache_get(key) IS NOT NULL) AS listed_are_readable
FROM qcache_entries WHERE key LIKE 'ev:big:%';
SELECT qcache_clear() > 0 AS cleared;
SELECT entries = :e0 AS entries_back, bytes_used = :b0 AS bytes_back FROM qcache_stats;

-- More entries than qcache.max_entries.
SELECT qcache_reset_stats();
SELECT count(*) FILTER (WHERE qcache_set('ev:small:' || g, to_jsonb(g), 0)) =
       current_setting('qcache.max_entries')::int + 1000 AS all_stored
FROM generate_series(1, current_setting('qcache.max_entries')::int + 1000) g;
SELECT entries <= current_setting('qcache.max_entries')::int AS within_max_entries,
       evictions_memory >= 1000 AS evictions_counted,
       evictions_memory = current_setting('qcache.max_entries')::int + 1000 - (entries - :e0)
         AS every_eviction_counted
FROM qcache_stats;
SELECT qcache_get('ev:small:' || (current_setting('qcache.max_entries')::int + 1000)) IS NOT NULL
       AS newest_kept;
SELECT qcache_clear() > 0 AS cleared;

-- A value larger than the whole cache, with max_entry_size out of the way:
-- false, counted, and the transaction goes on.
SELECT qcache_reset_stats();
SET qcache.max_entry_size = '1GB';
BEGIN;
SELECT qcache_set('ev:huge', to_jsonb(repeat('h', pg_size_bytes(current_setting('qcache.memory'))::int + 1000000)))
       AS huge_stored;
SELECT qcache_get('ev:huge') IS NULL AS huge_miss;
SELECT qcache_set('ev:after', '"fine"') AS after_stored;
COMMIT;
RESET qcache.max_entry_size;
SELECT sets, sets_rejected FROM qcache_stats;
SELECT qcache_get('ev:after');

SELECT qcache_clear() > 0 AS cleared;
