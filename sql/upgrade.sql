--
-- upgrade: CREATE EXTENSION qcache VERSION '1.0' and then ALTER EXTENSION
-- qcache UPDATE reach the default version with the same objects, definitions and
-- privileges as a fresh install of it.  Runs in a database of its own.
--
SELECT current_database() AS origdb \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regression_qcache_upgrade;
RESET client_min_messages;
CREATE DATABASE regression_qcache_upgrade;
\c regression_qcache_upgrade

-- The extension's objects: functions with their signature, result,
-- strictness, volatility, security, settings, body and privileges; and
-- its relations, with their columns and privileges.
CREATE VIEW ext_objects AS
SELECT 'function' AS kind, p.oid::regprocedure::text AS name,
       concat_ws(' | ', pg_get_function_result(p.oid), p.prolang::regproc::text,
                 p.proisstrict, p.provolatile, p.prosecdef, p.proconfig::text,
                 md5(p.prosrc), p.probin, p.proacl::text) AS definition
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qcache')
UNION ALL
SELECT 'relation', c.oid::regclass::text,
       concat_ws(' | ', c.relkind, c.relacl::text,
                 md5(coalesce(pg_get_viewdef(c.oid), '')),
                 (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                                    ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0))
FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qcache');
CREATE TABLE upgraded (kind text, name text, definition text);

-- 1.0, then the update.
CREATE EXTENSION qcache VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'qcache';
SELECT kind, name FROM ext_objects ORDER BY 1, 2;
-- What 1.0 cached survives the update.
SELECT qcache_set('upgrade:k', '"kept"', 0);
ALTER EXTENSION qcache UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'qcache';
SELECT qcache_get('upgrade:k');
SELECT kind, name FROM ext_objects ORDER BY 1, 2;
INSERT INTO upgraded SELECT * FROM ext_objects;

-- A fresh install of the default version.
DROP EXTENSION qcache;
CREATE EXTENSION qcache;
SELECT extversion FROM pg_extension WHERE extname = 'qcache';

-- The same objects, with the same definitions.
SELECT coalesce(u.kind, f.kind) AS kind, coalesce(u.name, f.name) AS name,
       CASE WHEN u.name IS NULL THEN 'only in a fresh install'
            WHEN f.name IS NULL THEN 'only after the update'
            ELSE 'different definition' END AS difference
FROM upgraded u FULL JOIN ext_objects f ON f.kind = u.kind AND f.name = u.name
WHERE u.definition IS DISTINCT FROM f.definition
ORDER BY 1, 2;
SELECT count(*) AS objects FROM ext_objects;

-- The upgraded extension works: a watched table invalidates at commit.
DROP EXTENSION qcache;
CREATE EXTENSION qcache VERSION '1.0';
ALTER EXTENSION qcache UPDATE TO '1.1';
CREATE TABLE up_t (id int);
SET client_min_messages = warning;
SELECT qcache_watch('up_t', 'up:{id}');
RESET client_min_messages;
SELECT qcache_set('upgrade:t', '1', 0, ARRAY['up:1']),
       qcache_fetch('upgrade:f', 'SELECT count(*) FROM up_t') AS fetched;
INSERT INTO up_t VALUES (1);
SELECT qcache_get('upgrade:t') AS t;
SELECT qcache_fetch('upgrade:f', 'SELECT count(*) FROM up_t') AS fetched;
-- Updated to the default version, a table watched before 1.3 also gets the
-- row trigger for logical replication (enabled for replica mode: R).
ALTER EXTENSION qcache UPDATE;
SELECT tgname, tgenabled FROM pg_trigger
WHERE tgrelid = 'up_t'::regclass AND tgname LIKE 'qcache%' ORDER BY 1;
SELECT qcache_clear() >= 0 AS cleared;

-- 1.3 replaces qcache_fetch and qcache_fetch_json (parameters) and
-- qcache_set (leases): what a DBA
-- granted on the old ones is granted on the new ones, and the 1.2 calls
-- work unchanged.
DROP TABLE up_t;
DROP EXTENSION qcache;
CREATE EXTENSION qcache VERSION '1.2';
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_qcache_up_reader;
RESET client_min_messages;
CREATE ROLE regress_qcache_up_reader;
GRANT EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[]),
	qcache_fetch_json(text, text, integer, text[]),
	qcache_set(text, jsonb, integer, text[]) TO regress_qcache_up_reader;
ALTER EXTENSION qcache UPDATE TO '1.3';
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_qcache_up_reader', p.oid, 'EXECUTE') AS reader_may
FROM pg_proc p WHERE p.proname IN ('qcache_fetch', 'qcache_fetch_json', 'qcache_set') ORDER BY 1;
SET ROLE regress_qcache_up_reader;
SELECT qcache_fetch('upgrade:g', 'SELECT 1 AS one', 60, NULL) AS old_call,
       qcache_fetch_json('upgrade:g', 'SELECT $1::int AS one', params => ARRAY['2']) AS new_call;
RESET ROLE;
DROP EXTENSION qcache;
DROP ROLE regress_qcache_up_reader;

\c :origdb
DROP DATABASE regression_qcache_upgrade;
