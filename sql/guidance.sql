--
-- guidance (issue 14): errors that say how to get out, the grant
-- functions, why a set stored nothing, what qcache_entries says about each
-- entry, and the per-namespace figures.  Runs in a database of its own, so
-- that the entries and namespaces it counts are its own.
--
SELECT current_database() AS origdb \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regression_qcache_guidance;
DROP ROLE IF EXISTS regress_qc_reader;
DROP ROLE IF EXISTS regress_qc_writer;
RESET client_min_messages;
CREATE DATABASE regression_qcache_guidance;
\c regression_qcache_guidance
CREATE EXTENSION qcache;
SET qcache.default_ttl = 0;
\set SHOW_CONTEXT never

-- ---------- errors with a way out ----------

-- A parameter in a fetch query without its value: qcache's own error and
-- hint, not the wrapper query.
SELECT qcache_fetch('g:p', 'SELECT $1 AS x');
SELECT qcache_fetch('g:p', 'SELECT * FROM (SELECT 1 AS a) s WHERE a = $2');

-- qcache_watch on a view names the tables under it, through nested views,
-- and on a materialized view says that it cannot have triggers.
CREATE TABLE g_orders (id int PRIMARY KEY, customer_id int, amount numeric);
CREATE TABLE "G Customers" (id int PRIMARY KEY, name text);
CREATE VIEW g_order_names AS
  SELECT o.id, c.name, o.amount FROM g_orders o JOIN "G Customers" c ON c.id = o.customer_id;
CREATE VIEW g_big_orders AS SELECT * FROM g_order_names WHERE amount > 100;
CREATE VIEW g_constant AS SELECT 1 AS one;
CREATE MATERIALIZED VIEW g_totals AS SELECT sum(amount) AS total FROM g_orders;
SELECT qcache_watch('g_order_names');
SELECT qcache_watch('g_big_orders', 'order:{id}');
SELECT qcache_watch('g_constant');
SELECT qcache_watch('g_totals');
-- nothing was created on the tables
SELECT count(*) AS triggers FROM pg_trigger WHERE tgname LIKE 'qcache%';

-- ---------- the grant functions ----------
CREATE ROLE regress_qc_reader;
CREATE ROLE regress_qc_writer;
CREATE VIEW g_privs AS
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_qc_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('regress_qc_writer', p.oid, 'EXECUTE') AS writer
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qcache')
ORDER BY 1::text;
SELECT * FROM g_privs;
SELECT qcache_grant_reader('regress_qc_reader');
SELECT qcache_grant_writer('regress_qc_writer');
SELECT * FROM g_privs;
-- a reader now reads through the cache
GRANT SELECT ON g_orders TO regress_qc_reader;
SET ROLE regress_qc_reader;
SELECT qcache_fetch('g:orders', 'SELECT count(*) AS n FROM g_orders');
SELECT qcache_set('g:x', '1');
SELECT qcache_grant_reader('regress_qc_reader');
RESET ROLE;
SELECT qcache_revoke('regress_qc_reader');
SELECT qcache_revoke('regress_qc_writer');
SELECT function FROM g_privs WHERE reader OR writer;
SELECT qcache_grant_reader(NULL);
SELECT qcache_grant_writer('regress_qc_nobody');

-- ---------- why a set stored nothing ----------
SELECT qcache_reset_stats();
SET qcache.max_entry_size = 100;
SET client_min_messages = debug1;
SELECT qcache_set('g:large', to_jsonb(repeat('x', 200)));
RESET client_min_messages;
RESET qcache.max_entry_size;
SET qcache.enabled = off;
SELECT qcache_set('g:off', '1');
RESET qcache.enabled;
SELECT qcache_watch('g_orders');
BEGIN;
INSERT INTO g_orders VALUES (1, 1, 10);
SET LOCAL client_min_messages = debug1;
SELECT qcache_set('g:writer', '1', 0, ARRAY['table:public.g_orders']);
COMMIT;
SELECT qcache_fetch('g:catalog', 'SELECT count(*) > 0 AS any FROM pg_class WHERE relname = ''pg_class''');
SELECT sets, sets_rejected, sets_rejected_too_large, sets_rejected_no_memory,
       sets_rejected_writer, sets_rejected_stale, sets_rejected_too_old,
       sets_rejected_redis, sets_rejected_standby, sets_rejected_uncacheable,
       sets_disabled
FROM qcache_stats;

-- ---------- qcache_entries: kind, scope, state, servable ----------
SELECT qcache_clear() >= 0 AS cleared;
INSERT INTO "G Customers" VALUES (1, 'Ada');
SELECT qcache_set('g:value', '1', 0, ARRAY['table:public.g_orders']);
SELECT qcache_fetch('g:shared', 'SELECT sum(amount) AS total FROM g_orders');
SELECT qcache_fetch('g:mine', 'SELECT current_user = ''nobody'' AS nobody, count(*) FROM g_orders');
SELECT key, kind, scope = current_user AS scope_is_me, scope IS NULL AS shared, state, servable
FROM qcache_entries ORDER BY key;
-- inside a transaction that wrote to g_orders, its entries are stale there
BEGIN;
UPDATE g_orders SET amount = 11;
SELECT key, state, servable FROM qcache_entries ORDER BY key;
COMMIT;
-- and for everyone once it committed (until the sweeper frees them)
SELECT key, state, servable FROM qcache_entries WHERE state <> 'stale' ORDER BY key;
SELECT qcache_get('g:value') IS NULL AS miss;
-- another role sees neither the keys nor the scope
SELECT qcache_clear() >= 0 AS cleared;
SELECT qcache_set('g:value', '2', 0);
SELECT jsonb_array_length(qcache_fetch('g:mine', 'SELECT current_user = ''nobody'' AS nobody')) AS n;
CREATE ROLE regress_qc_nobody;
SET ROLE regress_qc_nobody;
SELECT key, tags, kind, scope, state, servable FROM qcache_entries ORDER BY kind, state;
SELECT * FROM qcache_namespaces;
RESET ROLE;

-- ---------- qcache_namespaces ----------
SELECT qcache_clear() >= 0 AS cleared;
SELECT qcache_reset_stats();
SELECT qcache_set('users:1', '{"name": "Ada"}'), qcache_set('users:2', '{"name": "Bob"}'),
       qcache_set('orders:1', '[1, 2]'), qcache_set('plain', '0');
SELECT qcache_get('users:1') IS NOT NULL, qcache_get('users:1') IS NOT NULL,
       qcache_get('users:3') IS NULL, qcache_get('orders:9') IS NULL,
       qcache_get('plain') IS NOT NULL, qcache_get('nothing:here') IS NULL;
SELECT jsonb_array_length(qcache_fetch('report:orders', 'SELECT * FROM g_orders')),
       jsonb_array_length(qcache_fetch('report:orders', 'SELECT * FROM g_orders'));
SELECT database = current_database() AS this_db, namespace, hits, misses, hit_ratio,
       sets, entries, bytes > 0 AS has_bytes
FROM qcache_namespaces;
-- bounded: 600 namespaces share at most 480 slots; the rest are "other"
SELECT qcache_reset_stats();
SELECT count(qcache_get('many' || g || ':k')) FROM generate_series(1, 600) g;
SELECT count(*) FILTER (WHERE namespace IS NOT NULL) BETWEEN 400 AND 480 AS bounded,
       count(*) FILTER (WHERE namespace IS NULL) AS other_rows,
       sum(misses) AS misses,
       sum(misses) FILTER (WHERE namespace IS NULL) > 0 AS other_counted
FROM qcache_namespaces;

\c :origdb
SET client_min_messages = warning;
DROP DATABASE regression_qcache_guidance;
DROP ROLE regress_qc_reader;
DROP ROLE regress_qc_writer;
DROP ROLE regress_qc_nobody;
