--
-- triggers: qcache_invalidate_trigger(template, ...) as a row and as a
-- statement trigger.  A row trigger expands each {column} from NEW
-- (INSERT), OLD (DELETE), or both (UPDATE); unquoted names fold to lower
-- case, "Quoted" ones do not, {{ and }} are literal braces, NULL expands to
-- the empty string and every type goes through its output function.  A
-- statement trigger expands only templates without columns, except on
-- TRUNCATE, where a template with columns invalidates the template's family
-- (the tags that start like it, up to its first ':'; the whole database for
-- a template with a column before any ':') and the table's tags.  Without arguments the trigger invalidates the table's own tag,
-- table:<schema>.<name>.  Errors in templates are raised when the trigger
-- fires.
--
-- Each statement here runs in its own transaction, so its invalidations
-- have taken effect (at its commit) when the next statement looks.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
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

--
-- Row triggers: every identifier, quoting and type case.
--
SET datestyle = 'ISO, YMD';
CREATE TABLE trg_t (
	id int PRIMARY KEY,
	"Mixed Col" text,
	mixedcol text,
	"we}ird" text,
	"a""b" int,
	price numeric,
	born date,
	flag bool,
	arr int[],
	doc jsonb,
	n text);
CREATE TRIGGER trg_t_row AFTER INSERT OR UPDATE OR DELETE ON trg_t
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger(
		'id:{id}', 'mixed:{"Mixed Col"}', 'fold:{MixedCol}', 'weird:{"we}ird"}',
		'quote:{"a""b"}', 'price:{price}', 'born:{born}', 'flag:{flag}',
		'arr:{arr}', 'doc:{doc}', 'null:[{n}]', 'braces:{{{id}}}', '}}{{',
		'pair:{id}/{price}', 'literal');

-- INSERT: the tags of NEW.
SELECT pg_temp.arm('id:1', 'mixed:Hello World', 'fold:lower', 'weird:w', 'quote:7',
                   'price:1.50', 'born:2024-01-02', 'flag:t', 'arr:{1,2}',
                   'doc:{"k": [1, "x"]}', 'null:[]', 'braces:{1}', '}{', 'pair:1/1.50',
                   'literal',
                   -- not expected: another row, unfolded or unexpanded forms
                   'id:2', 'mixed:hello world', 'fold:', 'null:[NULL]', 'braces:{{1}}',
                   'id:{id}', 'table:public.trg_t');
INSERT INTO trg_t VALUES (1, 'Hello World', 'lower', 'w', 7, 1.50, '2024-01-02', true,
                          '{1,2}', '{"k": [1, "x"]}', NULL);
SELECT pg_temp.gone();

-- UPDATE: the tags of OLD and of NEW.
SELECT pg_temp.arm('id:1', 'id:2', 'id:3', 'price:1.50', 'price:2.5', 'pair:1/1.50',
                   'pair:2/2.5', 'pair:1/2.5', 'pair:2/1.50', 'null:[]', 'null:[set]',
                   'mixed:Hello World', 'literal');
UPDATE trg_t SET id = 2, price = 2.5, n = 'set' WHERE id = 1;
SELECT pg_temp.gone();

-- An UPDATE that changes nothing still expands (the row was written).
SELECT pg_temp.arm('id:2', 'id:3', 'literal');
UPDATE trg_t SET price = price WHERE id = 2;
SELECT pg_temp.gone();

-- An UPDATE or DELETE that matches no row fires no row trigger.
SELECT pg_temp.arm('id:2', 'literal');
UPDATE trg_t SET price = 0 WHERE id = 99;
DELETE FROM trg_t WHERE id = 99;
SELECT pg_temp.gone();

-- DELETE: the tags of OLD.
INSERT INTO trg_t (id, price) VALUES (3, 3);
SELECT pg_temp.arm('id:1', 'id:2', 'id:3', 'price:2.5', 'price:3', 'null:[set]',
                   'null:[]', 'literal');
DELETE FROM trg_t WHERE id = 2;
SELECT pg_temp.gone();

-- One statement, many rows: every row's tags.
SELECT pg_temp.arm('id:3', 'id:4', 'id:5', 'id:6', 'id:7');
INSERT INTO trg_t (id) SELECT g FROM generate_series(4, 6) g;
SELECT pg_temp.gone();
SELECT pg_temp.arm('id:3', 'id:4', 'id:5', 'id:6', 'id:7');
DELETE FROM trg_t WHERE id IN (3, 5);
SELECT pg_temp.gone();

-- INSERT ... ON CONFLICT DO UPDATE: the updated row's OLD and NEW.
SELECT pg_temp.arm('id:4', 'price:', 'price:44', 'id:8');
INSERT INTO trg_t (id, price) VALUES (4, 44) ON CONFLICT (id) DO UPDATE SET price = 44;
SELECT pg_temp.gone();

-- A BEFORE row trigger invalidates the same way and lets the row through
-- unchanged.
CREATE TABLE trg_before (id int PRIMARY KEY, v text);
CREATE TRIGGER trg_before_row BEFORE INSERT OR UPDATE OR DELETE ON trg_before
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger('before:{id}:{v}');
SELECT pg_temp.arm('before:1:a', 'before:1:b', 'before:2:c');
INSERT INTO trg_before VALUES (1, 'a'), (2, 'c');
SELECT pg_temp.gone();
SELECT * FROM trg_before ORDER BY id;
SELECT pg_temp.arm('before:1:a', 'before:1:b', 'before:2:c');
UPDATE trg_before SET v = 'b' WHERE id = 1;
SELECT pg_temp.gone();
SELECT * FROM trg_before ORDER BY id;
SELECT pg_temp.arm('before:1:a', 'before:1:b', 'before:2:c');
DELETE FROM trg_before WHERE id = 2;
SELECT pg_temp.gone();
SELECT * FROM trg_before ORDER BY id;

-- A row trigger without arguments: the table's own tag.
CREATE TABLE trg_noarg (id int);
CREATE TRIGGER trg_noarg_row AFTER INSERT OR UPDATE OR DELETE ON trg_noarg
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger();
SELECT pg_temp.arm('table:public.trg_noarg', 'table:public.trg_t', 'trg_noarg');
INSERT INTO trg_noarg VALUES (1);
SELECT pg_temp.gone();

-- The table tag is schema-qualified, with names as they are (not quoted).
CREATE SCHEMA "Trg Schema";
CREATE TABLE "Trg Schema"."Odd.Name" (id int);
CREATE TRIGGER odd_row AFTER INSERT ON "Trg Schema"."Odd.Name"
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger();
SELECT pg_temp.arm('table:Trg Schema.Odd.Name', 'table:"Trg Schema"."Odd.Name"',
                   'table:public.Odd.Name');
INSERT INTO "Trg Schema"."Odd.Name" VALUES (1);
SELECT pg_temp.gone();

--
-- Statement triggers.
--
CREATE TABLE trg_s (id int, v text);
CREATE TRIGGER trg_s_stmt AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trg_s
	FOR EACH STATEMENT EXECUTE FUNCTION qcache_invalidate_trigger('stmt', 'brace{{x}}');
-- Templates without columns, on each event, even when no row changed.
SELECT pg_temp.arm('stmt', 'brace{x}', 'brace{{x}}', 'table:public.trg_s', 'other');
INSERT INTO trg_s VALUES (1, 'a');
SELECT pg_temp.gone();
SELECT pg_temp.arm('stmt', 'brace{x}', 'table:public.trg_s', 'other');
UPDATE trg_s SET v = 'b' WHERE id = 99;
SELECT pg_temp.gone();
SELECT pg_temp.arm('stmt', 'brace{x}', 'table:public.trg_s', 'other');
DELETE FROM trg_s WHERE id = 99;
SELECT pg_temp.gone();
SELECT pg_temp.arm('stmt', 'brace{x}', 'table:public.trg_s', 'other');
TRUNCATE trg_s;
SELECT pg_temp.gone();

-- Without arguments: the table's tag.
CREATE TABLE trg_s2 (id int);
CREATE TRIGGER trg_s2_stmt AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trg_s2
	FOR EACH STATEMENT EXECUTE FUNCTION qcache_invalidate_trigger();
SELECT pg_temp.arm('table:public.trg_s2', 'table:public.trg_s', 'other');
INSERT INTO trg_s2 VALUES (1);
SELECT pg_temp.gone();
SELECT pg_temp.arm('table:public.trg_s2', 'table:public.trg_s', 'other');
TRUNCATE trg_s2;
SELECT pg_temp.gone();

-- A template with columns in a statement trigger: on INSERT, UPDATE and
-- DELETE an error (09000) that undoes the statement; on TRUNCATE, which
-- cannot know the rows' values, the template's family s3:..., and the
-- table's tags.
CREATE TABLE trg_s3 (id int);
INSERT INTO trg_s3 VALUES (1);
CREATE TRIGGER trg_s3_stmt AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trg_s3
	FOR EACH STATEMENT EXECUTE FUNCTION qcache_invalidate_trigger('s3', 's3:{id}');
SELECT pg_temp.try($$INSERT INTO trg_s3 VALUES (2)$$) AS stmt_insert;
SELECT pg_temp.try($$UPDATE trg_s3 SET id = 3$$) AS stmt_update;
SELECT pg_temp.try($$DELETE FROM trg_s3$$) AS stmt_delete;
SELECT * FROM trg_s3;
SELECT pg_temp.arm('s3', 's3:1', 'table:public.trg_s3', 'unrelated', 'other:tag');
TRUNCATE trg_s3;
SELECT pg_temp.gone();
SELECT count(*) AS entries_left FROM qcache_entries;
-- A template whose first ':' comes after a column has no family: the whole
-- database, as a template without ':' at all.
CREATE TABLE trg_s4 (id int);
CREATE TRIGGER trg_s4_stmt AFTER TRUNCATE ON trg_s4
	FOR EACH STATEMENT EXECUTE FUNCTION qcache_invalidate_trigger('{id}:s4');
SELECT pg_temp.arm('1:s4', 'unrelated', 'other:tag');
TRUNCATE trg_s4;
SELECT pg_temp.gone();
SELECT count(*) AS entries_left FROM qcache_entries;
-- A TRUNCATE that is rolled back invalidates nothing.
SELECT pg_temp.arm('s3', 's3:1', 'unrelated');
BEGIN;
TRUNCATE trg_s3;
ROLLBACK;
SELECT pg_temp.gone();

--
-- Errors in templates, raised when the trigger fires (qcache_watch checks
-- them earlier, see the watch test).  The statement is undone.
--
CREATE TABLE trg_e (id int, "Name" text);
CREATE FUNCTION pg_temp.fire(tmpl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('CREATE TRIGGER trg_e_row AFTER INSERT ON trg_e FOR EACH ROW '
	               'EXECUTE FUNCTION qcache_invalidate_trigger(%L)', tmpl);
	r := pg_temp.try($q$INSERT INTO trg_e VALUES (1, 'x')$q$);
	DROP TRIGGER trg_e_row ON trg_e;
	RETURN r;
END
$$;
-- An unknown column: 42703 (undefined_column), naming table and template.
SELECT pg_temp.fire('x:{nope}') AS unknown;
SELECT pg_temp.fire('x:{Name}') AS folded_to_unknown;
SELECT pg_temp.fire('x:{"name"}') AS quoted_wrong_case;
SELECT pg_temp.fire('x:{ctid}') AS system_column;
-- Malformed templates: 22023 (invalid_parameter_value).
SELECT pg_temp.fire('x:{id') AS unclosed;
SELECT pg_temp.fire('x:{"id}') AS unclosed_quote;
SELECT pg_temp.fire('x:{"id"x}') AS text_after_quote;
SELECT pg_temp.fire('x:{}') AS empty;
SELECT pg_temp.fire('x:{""}') AS empty_quoted;
SELECT pg_temp.fire('x:}') AS stray_close;
-- None of these inserted anything; a good template does.
SELECT count(*) AS rows_before FROM trg_e;
SELECT pg_temp.fire('x:{"Name"}:{id}') AS good;
SELECT count(*) AS rows_after FROM trg_e;

-- A column dropped after the trigger was made: the next write fails.
CREATE TABLE trg_d (id int, gone int);
CREATE TRIGGER trg_d_row AFTER INSERT ON trg_d
	FOR EACH ROW EXECUTE FUNCTION qcache_invalidate_trigger('d:{gone}');
INSERT INTO trg_d VALUES (1, 1);
ALTER TABLE trg_d DROP COLUMN gone;
SELECT pg_temp.try($$INSERT INTO trg_d VALUES (2)$$) AS after_drop;
SELECT count(*) FROM trg_d;

-- The function is for triggers only.
SELECT pg_temp.try($$SELECT qcache_invalidate_trigger()$$) AS direct_call;

RESET datestyle;
DROP TABLE trg_t, trg_before, trg_noarg, trg_s, trg_s2, trg_s3, trg_e, trg_d;
DROP SCHEMA "Trg Schema" CASCADE;
SELECT qcache_clear() >= 0 AS cleared;
