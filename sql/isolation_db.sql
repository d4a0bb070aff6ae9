--
-- isolation_db: keys are scoped to the current database.  The same key in
-- two databases is two entries, and nothing in one database reads, lists,
-- invalidates or clears another's.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
SELECT current_database() AS origdb \gset

SET client_min_messages = warning;
DROP DATABASE IF EXISTS regression_qcache_other;
RESET client_min_messages;
CREATE DATABASE regression_qcache_other;

-- In this database.
SELECT qcache_set('same-key', '"here"', 0, ARRAY['shared-tag']),
       qcache_set('pfx:1', '"here"', 0),
       qcache_set('only-here', '"here"', 0, ARRAY['shared-tag']);

-- In the other database: the same names, other values.
\c regression_qcache_other
CREATE EXTENSION qcache;
-- Nothing of the first database is visible.
SELECT qcache_get('same-key') IS NULL AS same_key_miss,
       qcache_get('only-here') IS NULL AS only_here_miss;
SELECT count(*) FROM qcache_entries;
SELECT qcache_invalidate('only-here');
SELECT qcache_set('same-key', '"there"', 0, ARRAY['shared-tag']),
       qcache_set('pfx:1', '"there"', 0),
       qcache_set('pfx:2', '"there"', 0, ARRAY['shared-tag']),
       qcache_set('only-there', '"there"', 0);
SELECT qcache_get('same-key');
SELECT key, tags FROM qcache_entries ORDER BY key;

-- Back in the first database: its own values and entries only.
\c :origdb
SELECT qcache_get('same-key'), qcache_get('pfx:1'),
       qcache_get('only-there') IS NULL AS only_there_miss,
       qcache_get('pfx:2') IS NULL AS pfx2_miss;
SELECT key, tags FROM qcache_entries ORDER BY key;
-- Invalidations count and remove this database's entries only.
SELECT qcache_invalidate('only-there');
SELECT qcache_invalidate_tag('shared-tag');
SELECT qcache_invalidate_prefix('pfx:');
SELECT qcache_set('cleared-here', '1', 0);
SELECT qcache_clear();
SELECT count(*) FROM qcache_entries;

-- The other database still has all four.
\c regression_qcache_other
SELECT key, qcache_get(key) AS value FROM qcache_entries ORDER BY key;
SELECT qcache_invalidate_tag('shared-tag');
SELECT qcache_set('last', '1', 0);
SELECT qcache_clear();
SELECT count(*) FROM qcache_entries;

-- And the first database's new entry survived the other's clear.
\c :origdb
SELECT qcache_set('survivor', '"here"', 0);
\c regression_qcache_other
SELECT qcache_set('survivor', '"there"', 0);
SELECT qcache_clear();
\c :origdb
SELECT qcache_get('survivor');

-- The other database is empty again.  Give it three entries, then drop
-- it: its entries go with it (a database created later may reuse its oid),
-- and this database's entries stay.
\c regression_qcache_other
SELECT count(*) FROM qcache_entries;
SELECT count(qcache_set('doomed:' || i, '1', 0)) FROM generate_series(1, 3) i;
\c :origdb
SELECT entries AS entries_before_drop FROM qcache_stats \gset
DROP DATABASE regression_qcache_other;
SELECT :entries_before_drop - entries AS dropped_with_database FROM qcache_stats;
SELECT qcache_get('survivor');

SELECT qcache_clear();
