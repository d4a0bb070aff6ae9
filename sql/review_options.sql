--
-- review_options: the third review's findings, one section each.  A
-- result computed by a transaction that wrote is not shared; a caller's
-- options (ttl, tags, table_tags) decide what that caller is served;
-- changes of a row type, and DROP of objects other than relations and
-- functions, invalidate; writes while a watch's triggers are disabled do
-- not leave entries stale.  Each check prints what the cache serves next
-- to what the query returns now.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- 1. A rolled-back write, on a table nobody watches, is never shared.
CREATE TABLE rv_unw (id int, v text);
INSERT INTO rv_unw VALUES (1, 'committed');
BEGIN;
UPDATE rv_unw SET v = 'rolled back';
SELECT qcache_fetch('rv:dirty', 'SELECT v FROM rv_unw') AS in_writer;
ROLLBACK;
SELECT qcache_fetch_cached('rv:dirty', 'SELECT v FROM rv_unw') AS cached_after_rollback,
       qcache_fetch('rv:dirty', 'SELECT v FROM rv_unw') AS fetched;

-- 2a. An entry made with table_tags => false still carries the OID tags:
-- an UPDATE of a watched table and an ALTER TABLE reach it.
CREATE TABLE rv_prod (id int PRIMARY KEY, price int);
INSERT INTO rv_prod VALUES (1, 100);
SELECT qcache_watch('rv_prod');
SELECT qcache_fetch('rv:price', 'SELECT price FROM rv_prod WHERE id = $1',
                    params => ARRAY['1'], table_tags => false) AS first;
UPDATE rv_prod SET price = 200;
SELECT qcache_fetch('rv:price', 'SELECT price FROM rv_prod WHERE id = $1',
                    params => ARRAY['1'], table_tags => false) AS after_update;
-- 2b. A caller who asks for table tags is not served an entry without them.
SELECT qcache_fetch_cached('rv:price', 'SELECT price FROM rv_prod WHERE id = $1',
                           ARRAY['1']) IS NULL AS default_caller_misses;
SELECT qcache_fetch('rv:price', 'SELECT price FROM rv_prod WHERE id = $1',
                    params => ARRAY['1']) AS default_caller;
SELECT tags @> ARRAY['table:public.rv_prod'] AS now_has_table_tag
FROM qcache_entries() WHERE key = 'rv:price';
-- 2c. Tags: a caller who gives a tag is not served an entry stored without it.
SELECT qcache_fetch('rv:tagged', 'SELECT price FROM rv_prod WHERE id = 1', 0) AS untagged;
SELECT qcache_fetch('rv:tagged', 'SELECT price FROM rv_prod WHERE id = 1', 0,
                    ARRAY['prices']) AS tagged;
SELECT qcache_invalidate_tag('prices') AS invalidated_by_the_tag;
-- 2d. TTL: a caller's ttl counts from when the entry was computed.
SELECT qcache_fetch('rv:clock', 'SELECT clock_timestamp() AS t', 0) IS NOT NULL AS stored;
SELECT pg_sleep(1.2);
SELECT qcache_fetch('rv:clock', 'SELECT clock_timestamp() AS t', 1)
     = qcache_fetch('rv:clock', 'SELECT clock_timestamp() AS t', 0) AS ttl0_caller_shares_the_new_one,
       (qcache_fetch('rv:clock', 'SELECT clock_timestamp() AS t', 1)->0->>'t')::timestamptz
       > clock_timestamp() - interval '1 second' AS ttl1_caller_gets_a_fresh_one;

-- 3. A row type used as another table's column type changes shape.
CREATE TABLE rv_inner (a int, secret text);
CREATE TABLE rv_outer (x rv_inner);
SELECT qcache_watch('rv_outer');
INSERT INTO rv_outer VALUES (ROW(1, 's')::rv_inner);
SELECT qcache_fetch('rv:outer', 'SELECT x FROM rv_outer') AS before;
ALTER TABLE rv_inner DROP COLUMN secret;
SELECT qcache_fetch_cached('rv:outer', 'SELECT x FROM rv_outer') AS cached,
       qcache_fetch('rv:outer', 'SELECT x FROM rv_outer') AS fetched;
CREATE TYPE rv_comp AS (a int, b int);
CREATE TABLE rv_ct (c rv_comp);
INSERT INTO rv_ct VALUES (ROW(1, 2));
SELECT qcache_fetch('rv:comp', 'SELECT c FROM rv_ct') AS before;
ALTER TYPE rv_comp DROP ATTRIBUTE b;
SELECT qcache_fetch_cached('rv:comp', 'SELECT c FROM rv_ct') AS cached;

-- 4. DROP CAST, and DROP ROLE under a regrole column.
CREATE TYPE rv_c2 AS (a int);
CREATE FUNCTION rv_c2txt(rv_c2) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'custom:' || $1.a $$;
CREATE CAST (rv_c2 AS text) WITH FUNCTION rv_c2txt(rv_c2);
CREATE TABLE rv_tc (x rv_c2);
INSERT INTO rv_tc VALUES (ROW(1));
SELECT qcache_fetch('rv:cast', 'SELECT x::text AS t FROM rv_tc') AS before;
DROP CAST (rv_c2 AS text);
SELECT qcache_fetch_cached('rv:cast', 'SELECT x::text AS t FROM rv_tc') AS cached,
       qcache_fetch('rv:cast', 'SELECT x::text AS t FROM rv_tc') AS fetched;
CREATE ROLE rv_dave;
CREATE TABLE rv_refs (r regrole);
INSERT INTO rv_refs VALUES ('rv_dave');
SELECT qcache_fetch('rv:role', 'SELECT r FROM rv_refs') AS before;
DROP ROLE rv_dave;
SELECT qcache_fetch_cached('rv:role', 'SELECT r FROM rv_refs') AS cached;

-- 5. Writes while a watch's triggers are disabled.
CREATE TABLE rv_w (id int, v text);
INSERT INTO rv_w VALUES (1, 'old');
SELECT qcache_watch('rv_w');
SELECT qcache_fetch('rv:w', 'SELECT v FROM rv_w') AS before;
ALTER TABLE rv_w DISABLE TRIGGER ALL;
SELECT qcache_fetch_cached('rv:w', 'SELECT v FROM rv_w') AS cached_after_disable;
SELECT qcache_fetch('rv:w', 'SELECT v FROM rv_w') AS computed_while_disabled;
UPDATE rv_w SET v = 'new';
ALTER TABLE rv_w ENABLE TRIGGER ALL;
SELECT qcache_fetch_cached('rv:w', 'SELECT v FROM rv_w') AS cached_after_enable,
       qcache_fetch('rv:w', 'SELECT v FROM rv_w') AS fetched;

DROP TABLE rv_unw, rv_prod, rv_outer, rv_inner, rv_ct, rv_tc, rv_refs, rv_w;
DROP TYPE rv_comp, rv_c2 CASCADE;
