--
-- privileges: execute on the functions that write, invalidate or clear is
-- revoked from PUBLIC (a DBA grants it); get, stats and entries are public;
-- qcache_entries shows keys and tags only to the role that stored the
-- entry, its members and pg_read_all_stats; qcache.max_entry_size is for
-- superusers.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- Runs a statement and reports its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

-- The ACLs the install script leaves: nothing for PUBLIC on the writers.
SELECT p.proname,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qcache')
ORDER BY 1;
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_select
FROM pg_class c WHERE c.relname IN ('qcache_stats', 'qcache_entries', 'qcache_redis') ORDER BY 1;

CREATE ROLE regress_qcache_reader;
CREATE ROLE regress_qcache_writer;
CREATE ROLE regress_qcache_member IN ROLE regress_qcache_writer;
CREATE ROLE regress_qcache_noinherit NOINHERIT IN ROLE regress_qcache_writer;
CREATE ROLE regress_qcache_stats IN ROLE pg_read_all_stats;
CREATE TABLE priv_secret (id int, secret text);
INSERT INTO priv_secret VALUES (1, 'hidden');
CREATE TABLE priv_open (id int, v text);
INSERT INTO priv_open VALUES (1, 'visible');

-- Entries stored by the superuser.
SELECT qcache_set('priv:super', '"super value"', 0, ARRAY['super-tag']),
       qcache_set('priv:super2', '"super 2"', 0);

--
-- A role with no grants: reads, but cannot write, invalidate or clear.
--
SET ROLE regress_qcache_reader;
SELECT qcache_get('priv:super') AS public_get;
SELECT qcache_get('priv:absent') IS NULL AS public_miss;
SELECT qcache_set('priv:reader', '1');
SELECT pg_temp.try($$SELECT qcache_set('priv:reader', '1')$$) AS set;
SELECT pg_temp.try($$SELECT qcache_set('priv:reader', '1', 10, ARRAY['t'])$$) AS set4;
SELECT pg_temp.try($$SELECT qcache_fetch('priv:reader', 'SELECT 1')$$) AS fetch;
SELECT pg_temp.try($$SELECT qcache_invalidate('priv:super')$$) AS invalidate;
SELECT pg_temp.try($$SELECT qcache_invalidate_tag('super-tag')$$) AS invalidate_tag;
SELECT pg_temp.try($$SELECT qcache_invalidate_prefix('priv:')$$) AS invalidate_prefix;
SELECT pg_temp.try($$SELECT qcache_clear()$$) AS clear;
SELECT pg_temp.try($$SELECT qcache_reset_stats()$$) AS reset_stats;
-- The stats are public.
SELECT pg_temp.try($$SELECT * FROM qcache_stats$$) AS stats_view;
SELECT pg_temp.try($$SELECT * FROM qcache_stats()$$) AS stats_function;
-- Entries are listed, but the keys and tags of others' entries are hidden.
SELECT key, tags, size > 0 AS has_size, expires IS NULL AS no_expiry
FROM qcache_entries ORDER BY size;
SELECT count(*) FILTER (WHERE key IS NULL) AS hidden,
       count(*) FILTER (WHERE key IS NOT NULL) AS shown
FROM qcache_entries();
-- qcache.max_entry_size is for superusers; the others are the user's.
SET qcache.max_entry_size = 100;
SET qcache.default_ttl = 10;
SET qcache.enabled = off;
SELECT qcache_get('priv:super') IS NULL AS miss_when_off;
RESET qcache.enabled;
RESET qcache.default_ttl;
-- Nothing was removed by the refused calls.
RESET ROLE;
SELECT key FROM qcache_entries ORDER BY key;

--
-- A role granted the writing functions.
--
GRANT EXECUTE ON FUNCTION qcache_set(text, jsonb, integer, text[], bigint),
	qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer), qcache_invalidate(text),
	qcache_invalidate_tag(text), qcache_invalidate_prefix(text), qcache_clear()
	TO regress_qcache_writer;
GRANT SELECT ON priv_open TO regress_qcache_writer;
SET ROLE regress_qcache_writer;
SELECT qcache_set('priv:writer', '"writer value"', 0, ARRAY['writer-tag']);
SELECT qcache_set('priv:writer2', '"writer 2"', 0, ARRAY['writer-tag']);
SELECT qcache_get('priv:writer'), qcache_get('priv:super');
-- Its own keys are shown, the superuser's hidden.
SELECT key, tags FROM qcache_entries ORDER BY key NULLS LAST, size;
-- Keys are not owned: a granted role may invalidate any key of the database.
SELECT qcache_invalidate('priv:super2');
SELECT qcache_invalidate_tag('writer-tag');
SELECT qcache_set('priv:writer', '"writer value"', 0, ARRAY['writer-tag']);
-- Not granted: reset_stats.
SELECT pg_temp.try($$SELECT qcache_reset_stats()$$) AS reset_stats;
-- qcache_fetch runs its query as the caller: a table it may not read is
-- an error, and nothing is cached.
SELECT pg_temp.try($$SELECT qcache_fetch('priv:secret', 'SELECT * FROM priv_secret')$$) AS fetch_secret;
SELECT qcache_get('priv:secret') IS NULL AS secret_not_cached;
SELECT qcache_fetch('priv:open', 'SELECT * FROM priv_open');
SELECT key FROM qcache_entries WHERE key IS NOT NULL ORDER BY key;
RESET ROLE;

--
-- A member of the writer (inheriting) sees the writer's keys, not the
-- superuser's; and holds the writer's grants.
--
SET ROLE regress_qcache_member;
SELECT key, tags FROM qcache_entries ORDER BY key NULLS LAST, size;
SELECT qcache_set('priv:member', '"member value"', 0);
RESET ROLE;
-- The writer does not see its member's keys.
SET ROLE regress_qcache_writer;
SELECT key FROM qcache_entries ORDER BY key NULLS LAST, size;
RESET ROLE;

--
-- A NOINHERIT member holds neither the grants nor the visibility.
--
SET ROLE regress_qcache_noinherit;
SELECT pg_temp.try($$SELECT qcache_set('priv:noinherit', '1')$$) AS set;
SELECT count(*) FILTER (WHERE key IS NULL) AS hidden,
       count(*) FILTER (WHERE key IS NOT NULL) AS shown
FROM qcache_entries;
RESET ROLE;

--
-- pg_read_all_stats members see every key.
--
SET ROLE regress_qcache_stats;
SELECT key, tags FROM qcache_entries ORDER BY key;
SELECT pg_temp.try($$SELECT qcache_clear()$$) AS clear;
RESET ROLE;

-- The reader still sees no key; the superuser sees them all.
SET ROLE regress_qcache_reader;
SELECT count(*) FILTER (WHERE key IS NULL) AS hidden,
       count(*) FILTER (WHERE key IS NOT NULL) AS shown
FROM qcache_entries;
RESET ROLE;
SELECT key, tags FROM qcache_entries ORDER BY key;

-- A granted clear removes every entry of the database, whoever stored it.
SET ROLE regress_qcache_writer;
SELECT qcache_clear();
RESET ROLE;
SELECT count(*) FROM qcache_entries;

-- Revoking takes the right away again.
REVOKE EXECUTE ON FUNCTION qcache_set(text, jsonb, integer, text[], bigint),
	qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer), qcache_invalidate(text),
	qcache_invalidate_tag(text), qcache_invalidate_prefix(text), qcache_clear()
	FROM regress_qcache_writer;
SET ROLE regress_qcache_writer;
SELECT pg_temp.try($$SELECT qcache_set('priv:writer', '1')$$) AS set;
SELECT pg_temp.try($$SELECT qcache_clear()$$) AS clear;
RESET ROLE;

DROP TABLE priv_secret, priv_open;
DROP ROLE regress_qcache_reader, regress_qcache_member, regress_qcache_noinherit,
	regress_qcache_stats, regress_qcache_writer;
SELECT qcache_clear();
