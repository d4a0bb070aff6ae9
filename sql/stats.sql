--
-- stats: the counters move as the calls say, and qcache_reset_stats zeroes
-- them.  Gauges (entries, bytes_used) are cluster-wide and not reset, so
-- they are compared relatively.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;

SELECT qcache_reset_stats();
SELECT hits, misses, hit_ratio, l2_hits, l2_misses, l2_errors, sets,
       sets_rejected, evictions_memory, invalidations, fetch_waits
FROM qcache_stats;
SELECT stats_reset <= now() AND stats_reset > now() - interval '1 hour' AS reset_recent
FROM qcache_stats;
-- The function and the view agree.
SELECT (SELECT hits FROM qcache_stats()) = (SELECT hits FROM qcache_stats) AS same;

-- Keep the gauges to compare with.
SELECT entries AS e0, bytes_used AS b0 FROM qcache_stats \gset
SELECT :b0 > 0 AS index_counted;

-- Sets, hits and misses.
SELECT qcache_set('st:a', '{"a": 1}'), qcache_set('st:b', '[1, 2, 3]'),
       qcache_set('st:c', '"c"', NULL, ARRAY['st']);
SELECT entries - :e0 AS new_entries, bytes_used > :b0 AS bytes_grew FROM qcache_stats;
SELECT qcache_get('st:a') IS NOT NULL, qcache_get('st:a') IS NOT NULL,
       qcache_get('st:b') IS NOT NULL, qcache_get('st:zzz') IS NULL;
SELECT hits, misses, hit_ratio, sets, sets_rejected, invalidations FROM qcache_stats;

-- An overwrite is a set, and does not add an entry.
SELECT qcache_set('st:a', '{"a": 2}');
SELECT sets, entries - :e0 AS new_entries FROM qcache_stats;

-- Invalidations count removed entries only.
SELECT qcache_invalidate('st:a'), qcache_invalidate('st:a'), qcache_invalidate('st:none');
SELECT invalidations, entries - :e0 AS new_entries FROM qcache_stats;
SELECT qcache_invalidate_tag('st'), qcache_invalidate_tag('st');
SELECT invalidations FROM qcache_stats;
SELECT qcache_set('st:p:' || g, '1') FROM generate_series(1, 4) g;
SELECT qcache_invalidate_prefix('st:p:');
SELECT invalidations FROM qcache_stats;
SELECT qcache_clear();
SELECT invalidations, entries = :e0 AS entries_back, bytes_used = :b0 AS bytes_back
FROM qcache_stats;

-- Gets of invalidated keys are misses.
SELECT qcache_get('st:a') IS NULL, qcache_get('st:c') IS NULL;
SELECT hits, misses FROM qcache_stats;

-- A rejected set counts in sets_rejected, not sets.
SET qcache.max_entry_size = 100;
SELECT qcache_set('st:big', to_jsonb(repeat('x', 200)));
RESET qcache.max_entry_size;
SELECT sets, sets_rejected FROM qcache_stats;

-- qcache_fetch counts a miss and a set, then hits.
SELECT qcache_fetch('st:f', 'SELECT 1 AS one') FROM generate_series(1, 3);
SELECT hits, misses, sets FROM qcache_stats;

-- NULL keys to get are not lookups.
SELECT qcache_get(NULL);
SELECT hits, misses FROM qcache_stats;

-- Argument errors count nothing.
SELECT qcache_set('st:err', '1', -1);
SELECT qcache_set('st:err', '1', NULL, ARRAY[NULL::text]);
SELECT sets, sets_rejected FROM qcache_stats;

-- Bytes: an entry's size is what bytes_used moved by.
SELECT qcache_clear() >= 0 AS cleared;
SELECT bytes_used AS b1 FROM qcache_stats \gset
SELECT qcache_set('st:sized', to_jsonb(repeat('z', 1000)), NULL, ARRAY['t1', 't2']);
SELECT (SELECT bytes_used FROM qcache_stats) - :b1 =
       (SELECT size FROM qcache_entries WHERE key = 'st:sized') AS size_matches;

-- Reset zeroes the counters, not the entries.
SELECT qcache_reset_stats();
SELECT hits, misses, hit_ratio, sets, sets_rejected, invalidations,
       entries - :e0 AS new_entries
FROM qcache_stats;
SELECT qcache_get('st:sized') IS NOT NULL AS still_cached;
SELECT hits, misses, hit_ratio FROM qcache_stats;

SELECT qcache_clear();
