--
-- write_paths: every way the data or the definition of a watched table can
-- change invalidates the qcache_fetch entries computed from it, at commit
-- (SPEC 5.1, issue 10).  Each check shows the value served after the
-- commit next to a fresh read of the same query (served | fresh): the two
-- must be equal.  Relations are known by OID, so renames and schema moves
-- do not detach entries; inheritance children and partitions, also ones
-- created or attached later, are covered by a watch on the parent.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- served(key, query): what qcache_fetch returns, next to the query's rows
-- now, computed without the cache.
CREATE FUNCTION pg_temp.served(k text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	fresh jsonb;
BEGIN
	EXECUTE format('SELECT COALESCE(jsonb_agg(r.*), ''[]'') FROM (%s) r', q) INTO fresh;
	RETURN qcache_fetch(k, q, 0)::text || ' | ' || fresh::text;
END
$$;

--
-- COPY FROM fires the statement triggers.
--
CREATE TABLE wp_items (id int PRIMARY KEY, v int);
INSERT INTO wp_items VALUES (1, 10);
SELECT qcache_watch('wp_items', 'item:{id}');
SELECT pg_temp.served('wp:sum', 'SELECT sum(v) AS s FROM wp_items');
COPY wp_items FROM stdin;
2	20
\.
SELECT pg_temp.served('wp:sum', 'SELECT sum(v) AS s FROM wp_items');
-- ON CONFLICT, a data-modifying CTE, a procedure that commits inside.
INSERT INTO wp_items VALUES (2, 21) ON CONFLICT (id) DO UPDATE SET v = excluded.v;
SELECT pg_temp.served('wp:sum', 'SELECT sum(v) AS s FROM wp_items');
WITH u AS (UPDATE wp_items SET v = v + 1 WHERE id = 1 RETURNING 1) SELECT count(*) FROM u;
SELECT pg_temp.served('wp:sum', 'SELECT sum(v) AS s FROM wp_items');
CREATE PROCEDURE pg_temp.bump() LANGUAGE plpgsql AS $$
BEGIN
	UPDATE wp_items SET v = v + 100 WHERE id = 1;
	COMMIT;
	UPDATE wp_items SET v = v + 100 WHERE id = 2;
END
$$;
CALL pg_temp.bump();
SELECT pg_temp.served('wp:sum', 'SELECT sum(v) AS s FROM wp_items');

--
-- Renames and schema moves: an entry over a view of a renamed table, and
-- over the table itself, stays attached to it.
--
CREATE VIEW wp_view AS SELECT id, v FROM wp_items;
SELECT pg_temp.served('wp:view', 'SELECT sum(v) AS s FROM wp_view');
ALTER TABLE wp_items RENAME TO wp_items2;
SELECT pg_temp.served('wp:view', 'SELECT sum(v) AS s FROM wp_view');
UPDATE wp_items2 SET v = v + 1 WHERE id = 1;
SELECT pg_temp.served('wp:view', 'SELECT sum(v) AS s FROM wp_view');
CREATE SCHEMA wp_s;
ALTER TABLE wp_items2 SET SCHEMA wp_s;
SELECT pg_temp.served('wp:view', 'SELECT sum(v) AS s FROM wp_view');
UPDATE wp_s.wp_items2 SET v = v + 1 WHERE id = 1;
SELECT pg_temp.served('wp:view', 'SELECT sum(v) AS s FROM wp_view');
-- the name tag follows the table's name now
SELECT qcache_set('wp:byname', '1', 0, ARRAY['table:wp_s.wp_items2']);
UPDATE wp_s.wp_items2 SET v = v + 1 WHERE id = 1;
SELECT qcache_get('wp:byname') AS byname_after_update;
ALTER TABLE wp_s.wp_items2 SET SCHEMA public;
ALTER TABLE wp_items2 RENAME TO wp_items;

--
-- DDL: column changes, CREATE OR REPLACE VIEW, DROP.
--
SELECT pg_temp.served('wp:star', 'SELECT * FROM wp_items ORDER BY id');
ALTER TABLE wp_items ADD COLUMN w int DEFAULT 7;
SELECT pg_temp.served('wp:star', 'SELECT * FROM wp_items ORDER BY id');
ALTER TABLE wp_items ALTER COLUMN w TYPE bigint USING w * 2;
SELECT pg_temp.served('wp:star', 'SELECT * FROM wp_items ORDER BY id');
ALTER TABLE wp_items DROP COLUMN w;
SELECT pg_temp.served('wp:star', 'SELECT * FROM wp_items ORDER BY id');
SELECT pg_temp.served('wp:view', 'SELECT * FROM wp_view ORDER BY id');
CREATE OR REPLACE VIEW wp_view AS SELECT id, v * 2 AS v FROM wp_items;
SELECT pg_temp.served('wp:view', 'SELECT * FROM wp_view ORDER BY id');
-- a rolled-back DDL invalidates nothing (the entry is still served)
BEGIN;
CREATE OR REPLACE VIEW wp_view AS SELECT id, v * 3 AS v FROM wp_items;
ROLLBACK;
SELECT count(*) AS hits_before FROM qcache_entries WHERE key = 'wp:view' AND hits > 0 AND servable;
SELECT pg_temp.served('wp:view', 'SELECT * FROM wp_view ORDER BY id');
SELECT hits AS view_hits FROM qcache_entries WHERE key = 'wp:view' AND servable;
DROP VIEW wp_view;
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'wp:view' AND servable) AS dropped_view_entry_gone;

--
-- Names: a new table that shadows a name on the search_path.
--
CREATE SCHEMA wp_first;
SET search_path = wp_first, public;
SELECT pg_temp.served('wp:shadow', 'SELECT count(*) AS n FROM wp_items');
CREATE TABLE wp_first.wp_items (id int);
SELECT pg_temp.served('wp:shadow', 'SELECT count(*) AS n FROM wp_items');
RESET search_path;

--
-- Row-level security and policies.
--
CREATE TABLE wp_rls (id int, owner text);
INSERT INTO wp_rls VALUES (1, 'a'), (2, 'b');
CREATE ROLE wp_reader;
GRANT SELECT ON wp_rls TO wp_reader;
GRANT EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer) TO wp_reader;
SET ROLE wp_reader;
SELECT pg_temp.served('wp:rls', 'SELECT count(*) AS n FROM wp_rls');
RESET ROLE;
ALTER TABLE wp_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY wp_a ON wp_rls FOR SELECT USING (owner = 'a');
SET ROLE wp_reader;
SELECT pg_temp.served('wp:rls', 'SELECT count(*) AS n FROM wp_rls');
RESET ROLE;
ALTER POLICY wp_a ON wp_rls USING (true);
SET ROLE wp_reader;
SELECT pg_temp.served('wp:rls', 'SELECT count(*) AS n FROM wp_rls');
RESET ROLE;
DROP POLICY wp_a ON wp_rls;
SET ROLE wp_reader;
SELECT pg_temp.served('wp:rls', 'SELECT count(*) AS n FROM wp_rls');
RESET ROLE;

--
-- Materialized views: REFRESH, also CONCURRENTLY.
--
CREATE MATERIALIZED VIEW wp_mv AS SELECT sum(v) AS s FROM wp_items;
CREATE UNIQUE INDEX ON wp_mv (s);
SELECT pg_temp.served('wp:mv', 'SELECT s FROM wp_mv');
UPDATE wp_items SET v = v + 1 WHERE id = 1;
REFRESH MATERIALIZED VIEW wp_mv;
SELECT pg_temp.served('wp:mv', 'SELECT s FROM wp_mv');
UPDATE wp_items SET v = v + 1 WHERE id = 1;
REFRESH MATERIALIZED VIEW CONCURRENTLY wp_mv;
SELECT pg_temp.served('wp:mv', 'SELECT s FROM wp_mv');

--
-- Inheritance: a watch on the parent covers its children, also one
-- created later; writes through the parent or to a child invalidate the
-- entries over the parent, the child and ONLY the parent.
--
CREATE TABLE wp_par (id int, v int);
CREATE TABLE wp_kid1 () INHERITS (wp_par);
INSERT INTO wp_par VALUES (1, 1);
INSERT INTO wp_kid1 VALUES (2, 2);
SELECT qcache_watch('wp_par');
CREATE TABLE wp_kid2 () INHERITS (wp_par);
SELECT tgrelid::regclass AS rel, tgname FROM pg_trigger
WHERE tgrelid IN ('wp_par'::regclass, 'wp_kid1'::regclass, 'wp_kid2'::regclass)
ORDER BY 1, 2;
CREATE FUNCTION pg_temp.inh() RETURNS SETOF text LANGUAGE sql AS $$
	SELECT pg_temp.served('wp:par', 'SELECT sum(v) AS s FROM wp_par')
	UNION ALL SELECT pg_temp.served('wp:only', 'SELECT sum(v) AS s FROM ONLY wp_par')
	UNION ALL SELECT pg_temp.served('wp:kid1', 'SELECT sum(v) AS s FROM wp_kid1')
	UNION ALL SELECT pg_temp.served('wp:kid2', 'SELECT sum(v) AS s FROM wp_kid2')
$$;
SELECT * FROM pg_temp.inh();
UPDATE wp_par SET v = v + 10;
SELECT * FROM pg_temp.inh();
INSERT INTO wp_kid2 VALUES (3, 3);
SELECT * FROM pg_temp.inh();
UPDATE wp_kid1 SET v = v + 100;
SELECT * FROM pg_temp.inh();
DELETE FROM ONLY wp_par;
SELECT * FROM pg_temp.inh();
TRUNCATE wp_par;
SELECT * FROM pg_temp.inh();
INSERT INTO wp_kid1 VALUES (4, 4);
ALTER TABLE wp_kid1 NO INHERIT wp_par;
SELECT * FROM pg_temp.inh();
ALTER TABLE wp_kid1 INHERIT wp_par;
SELECT * FROM pg_temp.inh();
SELECT qcache_unwatch('wp_par');
SELECT count(*) AS triggers_left FROM pg_trigger
WHERE tgrelid IN ('wp_par'::regclass, 'wp_kid1'::regclass, 'wp_kid2'::regclass)
  AND tgname LIKE 'qcache%';

--
-- Partitions: created and attached after the watch, written directly.
--
CREATE TABLE wp_pt (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE wp_pt1 PARTITION OF wp_pt FOR VALUES FROM (0) TO (10);
SELECT qcache_watch('wp_pt', 'pt:{id}');
CREATE TABLE wp_pt2 PARTITION OF wp_pt FOR VALUES FROM (10) TO (20);
CREATE TABLE wp_pt3 (id int, v int);
INSERT INTO wp_pt3 VALUES (25, 25);
INSERT INTO wp_pt VALUES (1, 1), (11, 11);
SELECT tgrelid::regclass AS rel, tgname, tgparentid <> 0 AS cloned, tgenabled FROM pg_trigger
WHERE tgrelid IN ('wp_pt'::regclass, 'wp_pt1'::regclass, 'wp_pt2'::regclass)
ORDER BY 1, 2;
CREATE FUNCTION pg_temp.pt() RETURNS SETOF text LANGUAGE sql AS $$
	SELECT pg_temp.served('wp:pt', 'SELECT sum(v) AS s FROM wp_pt')
	UNION ALL SELECT pg_temp.served('wp:pt2', 'SELECT sum(v) AS s FROM wp_pt2')
	UNION ALL SELECT pg_temp.served('wp:pt3', 'SELECT sum(v) AS s FROM wp_pt3')
$$;
SELECT * FROM pg_temp.pt();
UPDATE wp_pt2 SET v = v + 100;
SELECT * FROM pg_temp.pt();
ALTER TABLE wp_pt ATTACH PARTITION wp_pt3 FOR VALUES FROM (20) TO (30);
SELECT * FROM pg_temp.pt();
UPDATE wp_pt3 SET v = v + 100;
SELECT * FROM pg_temp.pt();
SELECT qcache_set('wp:pt:25', '1', 0, ARRAY['pt:25']);
DELETE FROM wp_pt3;
SELECT qcache_get('wp:pt:25') AS templated_after_delete;
SELECT * FROM pg_temp.pt();
ALTER TABLE wp_pt DETACH PARTITION wp_pt2;
SELECT * FROM pg_temp.pt();
-- a table watched on its own, attached: it takes its parent's watch (its
-- own row triggers would clash with the parent's clones)
CREATE TABLE wp_pt4 (id int, v int);
INSERT INTO wp_pt4 VALUES (35, 35);
SELECT qcache_watch('wp_pt4', 'own:{id}');
ALTER TABLE wp_pt ATTACH PARTITION wp_pt4 FOR VALUES FROM (30) TO (40);
SELECT tgname, tgparentid <> 0 AS cloned, tgenabled FROM pg_trigger
WHERE tgrelid = 'wp_pt4'::regclass ORDER BY 1, 2;
SELECT * FROM pg_temp.pt();
SELECT pg_temp.served('wp:pt4', 'SELECT sum(v) AS s FROM wp_pt4');
UPDATE wp_pt4 SET v = v + 1;
SELECT pg_temp.served('wp:pt4', 'SELECT sum(v) AS s FROM wp_pt4');
SELECT * FROM pg_temp.pt();

--
-- TRUNCATE with column templates: the table's entries and the templates'
-- families, nothing unrelated.
--
SELECT qcache_set('wp:fam1', '1', 0, ARRAY['item:1']),
       qcache_set('wp:fam2', '1', 0, ARRAY['item:2', 'other']),
       qcache_set('wp:unrel', '1', 0, ARRAY['unrelated:1']),
       qcache_set('wp:plain', '1', 0);
SELECT pg_temp.served('wp:sum2', 'SELECT sum(v) AS s FROM wp_items');
TRUNCATE wp_items;
SELECT qcache_get('wp:fam1') AS fam1, qcache_get('wp:fam2') AS fam2,
       qcache_get('wp:unrel') AS unrel, qcache_get('wp:plain') AS plain;
SELECT pg_temp.served('wp:sum2', 'SELECT sum(v) AS s FROM wp_items');
-- node-internal tags are not shown, and users cannot give them
SELECT tags FROM qcache_entries WHERE key = 'wp:sum2';
SELECT qcache_set('wp:x', '1', 0, ARRAY[chr(1) || 'names']);

DROP TABLE wp_items CASCADE;
DROP TABLE wp_par CASCADE;
DROP TABLE wp_pt, wp_pt2 CASCADE;
DROP TABLE wp_rls;
DROP MATERIALIZED VIEW IF EXISTS wp_mv;
DROP SCHEMA wp_s CASCADE;
DROP SCHEMA wp_first CASCADE;
REVOKE ALL ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer) FROM wp_reader;
DROP ROLE wp_reader;
