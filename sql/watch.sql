--
-- watch: qcache_watch(tbl, VARIADIC templates) and qcache_unwatch(tbl).
-- qcache_watch creates qcache_watch_table (a statement trigger on INSERT,
-- UPDATE, DELETE and TRUNCATE: the table's own tag) and, with templates,
-- qcache_watch_row (a row trigger on INSERT, UPDATE and DELETE) and
-- qcache_watch_truncate (a statement trigger on TRUNCATE).  Calling it again
-- replaces them; qcache_unwatch drops them.  Templates are checked when
-- qcache_watch is called.  Writes through foreign-key cascades fire the
-- child's triggers.  Both functions, and the trigger function, are revoked
-- from PUBLIC, but the triggers fire for every role that writes.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- Runs a statement and reports ok or its SQLSTATE, message and detail.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	det text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

-- arm(tags...): empty the cache and store one entry per tag, carrying just
-- that tag.  gone(): the armed tags whose entry is no longer served.
CREATE TEMP TABLE armed (tag text PRIMARY KEY);
CREATE FUNCTION pg_temp.arm(VARIADIC tags text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM armed;
	PERFORM qcache_clear();
	INSERT INTO armed SELECT DISTINCT unnest(tags);
	IF EXISTS (SELECT FROM armed
	           WHERE NOT qcache_set('armed|' || tag, to_jsonb(tag), 0, ARRAY[tag])) THEN
		RAISE EXCEPTION 'arm: a set was refused';
	END IF;
END
$$;
CREATE FUNCTION pg_temp.gone() RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(tag, ' ' ORDER BY tag), '(none)')
	FROM armed WHERE qcache_get('armed|' || tag) IS NULL
$$;
-- The qcache triggers of a table.
CREATE FUNCTION pg_temp.triggers(tbl regclass) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT pg_get_triggerdef(oid) FROM pg_trigger
	WHERE tgrelid = tbl AND tgname LIKE 'qcache%' ORDER BY tgname
$$;

CREATE TABLE w_products (id int PRIMARY KEY, category_id int, "Name" text);
INSERT INTO w_products VALUES (1, 10, 'one'), (2, 20, 'two');

--
-- A bare watch: one statement trigger, the table's tag on every event.
--
SELECT qcache_watch('w_products');
SELECT pg_temp.triggers('w_products');
SELECT pg_temp.arm('table:public.w_products', 'product:1', 'other');
UPDATE w_products SET "Name" = 'uno' WHERE id = 1;
SELECT pg_temp.gone();
SELECT pg_temp.arm('table:public.w_products', 'other');
INSERT INTO w_products VALUES (3, 10, 'three');
SELECT pg_temp.gone();
SELECT pg_temp.arm('table:public.w_products', 'other');
DELETE FROM w_products WHERE id = 3;
SELECT pg_temp.gone();
-- Even a statement that changes no row.
SELECT pg_temp.arm('table:public.w_products', 'other');
UPDATE w_products SET id = id WHERE false;
SELECT pg_temp.gone();
-- A SELECT invalidates nothing.
SELECT pg_temp.arm('table:public.w_products', 'other');
SELECT count(*) FROM w_products;
SELECT pg_temp.gone();

--
-- With templates: the row trigger and the TRUNCATE trigger too.
--
SELECT qcache_watch('w_products', 'product:{id}', 'category:{category_id}',
                    'name:{"Name"}', 'products');
SELECT pg_temp.triggers('w_products');
-- UPDATE: OLD and NEW.
SELECT pg_temp.arm('table:public.w_products', 'product:1', 'product:2',
                   'category:10', 'category:20', 'category:30', 'name:uno',
                   'products', 'other');
UPDATE w_products SET category_id = 30 WHERE id = 1;
SELECT pg_temp.gone();
-- INSERT: NEW; DELETE: OLD.
SELECT pg_temp.arm('table:public.w_products', 'product:1', 'product:4',
                   'category:30', 'category:40', 'name:four', 'other');
INSERT INTO w_products VALUES (4, 40, 'four');
SELECT pg_temp.gone();
SELECT pg_temp.arm('table:public.w_products', 'product:2', 'product:4',
                   'category:20', 'category:40', 'name:four', 'other');
DELETE FROM w_products WHERE id = 4;
SELECT pg_temp.gone();

-- Calling it again replaces the triggers; the same call twice is the same.
SELECT qcache_watch('w_products', 'product:{id}');
SELECT qcache_watch('w_products', 'product:{id}');
SELECT pg_temp.triggers('w_products');
SELECT pg_temp.arm('table:public.w_products', 'product:1', 'category:30', 'products');
UPDATE w_products SET "Name" = 'one' WHERE id = 1;
SELECT pg_temp.gone();
-- Templates without columns only: TRUNCATE invalidates them and the table.
SELECT qcache_watch('w_products', 'products', 'catalog');
SELECT pg_temp.arm('table:public.w_products', 'products', 'catalog', 'product:1', 'other');
UPDATE w_products SET "Name" = 'one' WHERE id = 1;
SELECT pg_temp.gone();
CREATE TABLE w_trunc (id int);
SELECT qcache_watch('w_trunc', 'trunc', 'trunc2');
SELECT pg_temp.arm('table:public.w_trunc', 'trunc', 'trunc2', 'table:public.w_products', 'other');
TRUNCATE w_trunc;
SELECT pg_temp.gone();
-- A template with columns: TRUNCATE cannot know the rows, so the template's
-- family goes (every tag trunc:...), with the table's tags, and nothing
-- unrelated.
SELECT qcache_watch('w_trunc', 'trunc:{id}');
SELECT pg_temp.arm('table:public.w_trunc', 'trunc:1', 'table:public.w_products', 'other');
TRUNCATE w_trunc;
SELECT pg_temp.gone();
-- Without templates again: only the statement trigger is left.
SELECT qcache_watch('w_products');
SELECT pg_temp.triggers('w_products');
SELECT qcache_watch('w_products', VARIADIC '{}');
SELECT qcache_watch('w_products', VARIADIC NULL);
SELECT pg_temp.triggers('w_products');

-- qcache_unwatch drops them; writes invalidate nothing after it; a second
-- call is harmless.
SELECT qcache_watch('w_products', 'product:{id}');
SELECT qcache_unwatch('w_products');
SELECT count(*) AS qcache_triggers FROM pg_trigger
WHERE tgrelid = 'w_products'::regclass AND tgname LIKE 'qcache%';
SELECT pg_temp.arm('table:public.w_products', 'product:1');
UPDATE w_products SET "Name" = 'one' WHERE id = 1;
TRUNCATE w_trunc;
SELECT pg_temp.gone();
SELECT qcache_unwatch('w_products');
-- Other triggers of the table are left alone.
CREATE TRIGGER mine AFTER INSERT ON w_products
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger('mine:{id}');
SELECT qcache_watch('w_products', 'product:{id}');
SELECT qcache_unwatch('w_products');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'w_products'::regclass ORDER BY 1;
DROP TRIGGER mine ON w_products;

--
-- Templates are checked when qcache_watch is called: nothing is created.
--
SELECT qcache_watch('w_products', 'product:{id}');
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'ok:{id}', 'p:{nope}')$$) AS unknown;
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'p:{Name}')$$) AS folded;
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'p:{xmin}')$$) AS system_column;
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'p:{id')$$) AS unclosed;
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'p:{}')$$) AS empty;
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'p:}')$$) AS stray;
SELECT pg_temp.try($$SELECT qcache_watch('w_products', 'p:{id}', NULL)$$) AS null_template;
SELECT pg_temp.try($$SELECT qcache_watch('no_such_table')$$) AS no_table;
-- The triggers of before are still there, unchanged.
SELECT pg_temp.triggers('w_products');
-- A view has no TRUNCATE trigger: qcache_watch it is an error (watch its
-- tables: qcache_fetch tags a view's results with its tables' tags).
CREATE VIEW w_view AS SELECT * FROM w_products;
SELECT pg_temp.try($$SELECT qcache_watch('w_view')$$) AS view;
-- A NULL table is an error that says so (22004), not a syntax error.
SELECT left(pg_temp.try($$SELECT qcache_watch(NULL)$$), 5) AS null_table;
SELECT left(pg_temp.try($$SELECT qcache_unwatch(NULL)$$), 5) AS null_table_unwatch;

--
-- Names that need quoting: the trigger goes on the right table, and the
-- table tag carries the names as they are.
--
CREATE SCHEMA "W Schema";
CREATE TABLE "W Schema"."Odd ""Table""" (id int, "Key" text);
SELECT qcache_watch('"W Schema"."Odd ""Table"""', 'odd:{"Key"}');
SELECT pg_temp.triggers('"W Schema"."Odd ""Table"""');
SELECT pg_temp.arm('table:W Schema.Odd "Table"', 'odd:K', 'other');
INSERT INTO "W Schema"."Odd ""Table""" VALUES (1, 'K');
SELECT pg_temp.gone();
SELECT qcache_unwatch('"W Schema"."Odd ""Table"""');
SELECT pg_temp.triggers('"W Schema"."Odd ""Table"""');
-- A watched table's triggers go with it.
SELECT qcache_watch('"W Schema"."Odd ""Table"""');
DROP TABLE "W Schema"."Odd ""Table""";
DROP SCHEMA "W Schema";

--
-- Foreign-key cascades fire the child's triggers.
--
CREATE TABLE w_parent (id int PRIMARY KEY);
CREATE TABLE w_child (id int PRIMARY KEY,
                      parent_id int REFERENCES w_parent ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE w_child2 (id int PRIMARY KEY,
                       parent_id int REFERENCES w_parent ON DELETE SET NULL);
INSERT INTO w_parent VALUES (1), (2), (3);
INSERT INTO w_child VALUES (11, 1), (12, 1), (21, 2);
INSERT INTO w_child2 VALUES (31, 3);
SELECT qcache_watch('w_child', 'child:{id}', 'children-of:{parent_id}');
SELECT qcache_watch('w_child2', 'child2:{id}', 'children2-of:{parent_id}');
-- ON DELETE CASCADE: the deleted children's tags and the child table's.
SELECT pg_temp.arm('table:public.w_child', 'child:11', 'child:12', 'child:21',
                   'children-of:1', 'children-of:2', 'table:public.w_child2', 'other');
DELETE FROM w_parent WHERE id = 1;
SELECT pg_temp.gone();
-- ON UPDATE CASCADE: OLD and NEW of the children.
SELECT pg_temp.arm('table:public.w_child', 'child:21', 'children-of:2', 'children-of:5',
                   'other');
UPDATE w_parent SET id = 5 WHERE id = 2;
SELECT pg_temp.gone();
-- ON DELETE SET NULL: OLD and NEW (NULL expands to '').
SELECT pg_temp.arm('table:public.w_child2', 'child2:31', 'children2-of:3',
                   'children2-of:', 'table:public.w_child', 'other');
DELETE FROM w_parent WHERE id = 3;
SELECT pg_temp.gone();
-- A cascade that is rolled back invalidates nothing.
SELECT pg_temp.arm('table:public.w_child', 'child:21', 'children-of:5', 'other');
BEGIN;
DELETE FROM w_parent WHERE id = 5;
ROLLBACK;
SELECT pg_temp.gone();
-- TRUNCATE ... CASCADE fires the child's TRUNCATE triggers: with column
-- templates, their families and the table's tags.
SELECT pg_temp.arm('table:public.w_child', 'child:21', 'other');
TRUNCATE w_parent CASCADE;
SELECT pg_temp.gone();

--
-- Partitioned tables.  A write through the parent fires the parent's
-- statement triggers and the row trigger (cloned to the partitions); a
-- direct write to a partition fires the partition's triggers only, so the
-- README says to watch the partitions that are written directly too.  With
-- the parent and its partitions watched, a cached query over the parent or
-- over one partition must miss after a write through either.
--
CREATE TABLE w_part (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE w_part1 PARTITION OF w_part FOR VALUES FROM (0) TO (100);
CREATE TABLE w_part2 PARTITION OF w_part FOR VALUES FROM (100) TO (200);
INSERT INTO w_part VALUES (1, 1), (101, 2);
SELECT qcache_watch('w_part');
SELECT qcache_watch('w_part1');
SELECT qcache_watch('w_part2');
CREATE FUNCTION pg_temp.fetch_parts() RETURNS TABLE (parent jsonb, part1 jsonb)
LANGUAGE sql AS $$
	SELECT qcache_fetch('w:parent', 'SELECT id, v FROM w_part ORDER BY id'),
	       qcache_fetch('w:part1', 'SELECT id, v FROM w_part1 ORDER BY id')
$$;
SELECT * FROM pg_temp.fetch_parts();
UPDATE w_part1 SET v = 10 WHERE id = 1;
SELECT * FROM pg_temp.fetch_parts();
UPDATE w_part SET v = 20 WHERE id = 1;
SELECT * FROM pg_temp.fetch_parts();
INSERT INTO w_part VALUES (2, 2);
SELECT * FROM pg_temp.fetch_parts();
DELETE FROM w_part WHERE id = 2;
SELECT * FROM pg_temp.fetch_parts();
TRUNCATE w_part1;
SELECT * FROM pg_temp.fetch_parts();
INSERT INTO w_part1 VALUES (3, 3);
SELECT * FROM pg_temp.fetch_parts();
TRUNCATE w_part;
SELECT * FROM pg_temp.fetch_parts();
SELECT id, v FROM w_part ORDER BY id;
-- Templates on the parent: the row trigger is cloned to the partitions
-- and expands there, whichever table the statement names.
SELECT qcache_watch('w_part', 'part:{id}');
INSERT INTO w_part VALUES (1, 1), (101, 2);
SELECT pg_temp.arm('part:1', 'part:101', 'other');
UPDATE w_part SET v = v + 1 WHERE id = 1;
SELECT pg_temp.gone();
SELECT pg_temp.arm('part:1', 'part:101', 'other');
UPDATE w_part2 SET v = v + 1 WHERE id = 101;
SELECT pg_temp.gone();
-- Watching (and unwatching) a partition works with the parent watched
-- with templates too.
SELECT pg_temp.try($$SELECT qcache_watch('w_part1')$$) AS watch_partition;
SELECT pg_temp.try($$SELECT qcache_watch('w_part2', 'p2:{v}')$$) AS watch_partition_templates;
SELECT pg_temp.try($$SELECT qcache_unwatch('w_part1')$$) AS unwatch_partition;

--
-- Privileges.  qcache_watch, qcache_unwatch and qcache_invalidate_trigger
-- are not for PUBLIC.  The triggers fire for whoever writes.
--
CREATE ROLE regress_qcache_watch_owner;
CREATE ROLE regress_qcache_watch_writer;
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_qcache_watch_owner', p.oid, 'EXECUTE') AS executable
FROM pg_proc p
WHERE p.proname IN ('qcache_watch', 'qcache_unwatch', 'qcache_invalidate_trigger')
ORDER BY 1::text;
CREATE TABLE w_owned (id int);
ALTER TABLE w_owned OWNER TO regress_qcache_watch_owner;
SET ROLE regress_qcache_watch_owner;
SELECT pg_temp.try($$SELECT qcache_watch('w_owned')$$) AS owner_watch;
SELECT pg_temp.try($$SELECT qcache_unwatch('w_owned')$$) AS owner_unwatch;
SELECT pg_temp.try($$CREATE TRIGGER t AFTER INSERT ON w_owned
	FOR EACH STATEMENT EXECUTE FUNCTION qcache_invalidate_trigger()$$) AS owner_trigger;
RESET ROLE;
-- Granted qcache_watch alone, the owner still may not create triggers that
-- run qcache_invalidate_trigger.
GRANT EXECUTE ON FUNCTION qcache_watch(regclass, text[]) TO regress_qcache_watch_owner;
SET ROLE regress_qcache_watch_owner;
SELECT pg_temp.try($$SELECT qcache_watch('w_owned')$$) AS owner_watch_granted;
RESET ROLE;
GRANT EXECUTE ON FUNCTION qcache_invalidate_trigger() TO regress_qcache_watch_owner;
SET ROLE regress_qcache_watch_owner;
SELECT pg_temp.try($$SELECT qcache_watch('w_owned', 'owned:{id}')$$) AS owner_watch_both;
RESET ROLE;
-- Granted both, a role that does not own the table may not add triggers.
CREATE TABLE w_not_owned (id int);
SET ROLE regress_qcache_watch_owner;
SELECT pg_temp.try($$SELECT qcache_watch('w_not_owned')$$) AS not_owner;
RESET ROLE;
-- A role without any qcache privilege writes: the tags are invalidated.
GRANT INSERT, UPDATE, DELETE, SELECT ON w_owned TO regress_qcache_watch_writer;
SELECT pg_temp.arm('table:public.w_owned', 'owned:1', 'owned:2', 'other');
SET ROLE regress_qcache_watch_writer;
INSERT INTO w_owned VALUES (1);
UPDATE w_owned SET id = 2;
RESET ROLE;
SELECT pg_temp.gone();

DROP TABLE w_owned, w_not_owned;
REVOKE ALL ON FUNCTION qcache_watch(regclass, text[]) FROM regress_qcache_watch_owner;
REVOKE ALL ON FUNCTION qcache_invalidate_trigger() FROM regress_qcache_watch_owner;
DROP ROLE regress_qcache_watch_owner, regress_qcache_watch_writer;
DROP VIEW w_view;
DROP TABLE w_products, w_trunc, w_child, w_child2, w_parent, w_part;
SELECT qcache_clear() >= 0 AS cleared;
