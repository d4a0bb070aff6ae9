--
-- ttl: expiry in seconds; 0 means never; NULL takes qcache.default_ttl.
-- Expired entries are never returned, and the sweeper reclaims them
-- without a read.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;

-- The expiry is exactly created + ttl seconds; ttl 0 has no expiry.
SELECT qcache_set('ttl:100', '1', 100), qcache_set('ttl:0', '1', 0),
       qcache_set('ttl:max', '1', 2147483647);
SELECT key, expires - created AS lifetime, expires IS NULL AS never
FROM qcache_entries WHERE key LIKE 'ttl:%' ORDER BY key;
SELECT expires - created = make_interval(secs => 2147483647) AS max_ttl
FROM qcache_entries WHERE key = 'ttl:max';

-- NULL takes qcache.default_ttl (300 seconds unless set).
SHOW qcache.default_ttl;
SELECT qcache_set('ttl:default', '1'), qcache_set('ttl:default-null', '1', NULL);
SELECT key, expires - created AS lifetime
FROM qcache_entries WHERE key LIKE 'ttl:default%' ORDER BY key;

-- The GUC is per session, in seconds, and accepts time units.
SET qcache.default_ttl = 7;
SELECT qcache_set('ttl:d7', '1');
SET qcache.default_ttl = '2min';
SHOW qcache.default_ttl;
SELECT qcache_set('ttl:d120', '1');
-- An explicit ttl overrides the default.
SELECT qcache_set('ttl:d-explicit', '1', 5);
-- default_ttl = 0: entries without a ttl never expire.
SET qcache.default_ttl = 0;
SELECT qcache_set('ttl:d0', '1');
SELECT key, expires - created AS lifetime, expires IS NULL AS never
FROM qcache_entries WHERE key LIKE 'ttl:d%' AND key NOT LIKE 'ttl:default%'
ORDER BY key;
-- Out of range.
SET qcache.default_ttl = -1;
RESET qcache.default_ttl;
SHOW qcache.default_ttl;

-- An entry with ttl 1 is a hit at once and a miss after it expires; an
-- entry with ttl 0 is still there.  Neither is read while it waits, so the
-- expiry does not depend on a read; ttl:1-unread is never read at all.
SELECT qcache_set('ttl:1', '"short"', 1) AS set,
       qcache_get('ttl:1') AS immediately,
       qcache_set('ttl:1-unread', '"short"', 1) AS set_unread,
       qcache_set('ttl:forever', '"long"', 0) AS set_forever;
SELECT pg_sleep(1.5);
SELECT qcache_get('ttl:1') IS NULL AS expired_miss,
       qcache_get('ttl:forever') AS forever;
-- Overwriting an expired key stores again.
SELECT qcache_set('ttl:1', '"again"', 60), qcache_get('ttl:1');

-- The sweeper reclaims the expired, unread entry: it leaves qcache_entries
-- (and its memory) within a few seconds, without anyone reading it.
DO $$
DECLARE
	i int := 0;
BEGIN
	WHILE EXISTS (SELECT 1 FROM qcache_entries WHERE key = 'ttl:1-unread') LOOP
		i := i + 1;
		IF i > 300 THEN
			RAISE EXCEPTION 'expired entry still listed after 30 seconds';
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT count(*) AS unread_left FROM qcache_entries WHERE key = 'ttl:1-unread';
SELECT evictions_expired > 0 AS swept FROM qcache_stats;

-- The entries that do not expire or expire later are untouched.
SELECT key FROM qcache_entries WHERE key IN ('ttl:0', 'ttl:forever', 'ttl:max', 'ttl:100')
ORDER BY key;

SELECT qcache_clear() > 0 AS cleared;
