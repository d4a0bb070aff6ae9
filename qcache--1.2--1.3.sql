/* qcache--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qcache UPDATE TO '1.3'" to load this file. \quit

-- ======================================================================
-- Issue 10 (every write path): qcache_watch also covers rows applied by
-- logical replication, and inheritance children and partitions, including
-- ones created or attached later.
--
-- The triggers of a watched table:
--   qcache_watch_table     BEFORE each INSERT, UPDATE, DELETE, TRUNCATE
--                          statement, ENABLE ALWAYS: the table's tags (its
--                          name and its OID) and its descendants' OIDs
--   qcache_watch_replica   AFTER each row INSERT, UPDATE, DELETE, ENABLE
--                          REPLICA: the same tags, for the logical
--                          replication apply worker, which fires row
--                          triggers only; it does not fire in ordinary
--                          sessions.  AFTER, not BEFORE: a BEFORE row
--                          trigger, even one that does not fire, makes
--                          every UPDATE and DELETE lock its row first
--                          (ExecBRUpdateTriggers), which costs a WAL
--                          record per row
--   qcache_watch_row       AFTER each row, ENABLE ALWAYS: the templates
--   qcache_watch_truncate  AFTER TRUNCATE, ENABLE ALWAYS: the templates'
--                          families
-- Row triggers of a partitioned table are cloned to its partitions by
-- PostgreSQL; the statement triggers, and every trigger of an inheritance
-- child, are created by qcache_watch on each descendant, and on a table
-- that becomes one later (qcache_watch_child, called by the module's
-- ProcessUtility hook after CREATE TABLE ... INHERITS / PARTITION OF and
-- ALTER TABLE ... ATTACH PARTITION / INHERIT).
-- ======================================================================

-- The triggers of one relation, replacing those qcache created before
-- (not row triggers a partition has cloned from its parent).
CREATE FUNCTION qcache_watch_install(tbl regclass, templates text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	args text;
	t name;
BEGIN
	FOR t IN
		SELECT tgname FROM pg_trigger
		WHERE tgrelid = tbl AND tgparentid = 0
		  AND tgname IN ('qcache_watch_table', 'qcache_watch_row',
		                 'qcache_watch_truncate', 'qcache_watch_replica')
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
	END LOOP;
	EXECUTE format('CREATE TRIGGER qcache_watch_table'
		' BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
		' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger()', tbl);
	EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER qcache_watch_table', tbl);
	IF NOT EXISTS (SELECT FROM pg_trigger
	               WHERE tgrelid = tbl AND tgname = 'qcache_watch_replica') THEN
		EXECUTE format('CREATE TRIGGER qcache_watch_replica'
			' AFTER INSERT OR UPDATE OR DELETE ON %s'
			' FOR EACH ROW EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger()', tbl);
		EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER qcache_watch_replica', tbl);
	END IF;
	IF cardinality(templates) > 0 THEN
		SELECT string_agg(quote_literal(tmpl), ', ') INTO args FROM unnest(templates) tmpl;
		IF NOT EXISTS (SELECT FROM pg_trigger
		               WHERE tgrelid = tbl AND tgname = 'qcache_watch_row') THEN
			EXECUTE format('CREATE TRIGGER qcache_watch_row'
				' AFTER INSERT OR UPDATE OR DELETE ON %s'
				' FOR EACH ROW EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger(%s)',
				tbl, args);
			EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER qcache_watch_row', tbl);
		END IF;
		EXECUTE format('CREATE TRIGGER qcache_watch_truncate'
			' AFTER TRUNCATE ON %s'
			' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger(%s)',
			tbl, args);
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER qcache_watch_truncate', tbl);
	END IF;
END
$$;

-- The inheritance children and partitions of a relation, all levels down.
CREATE FUNCTION qcache_descendants(tbl regclass)
RETURNS SETOF regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH RECURSIVE d(relid) AS (
		SELECT inhrelid FROM pg_inherits WHERE inhparent = tbl
		UNION
		SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent = d.relid)
	SELECT relid::regclass FROM d
$$;

-- Create the invalidation triggers of a table and of its descendants.
-- Calling it again replaces them.  Templates of a partition's row trigger
-- cloned from its parent's qcache_watch are left alone (a notice says so).
CREATE OR REPLACE FUNCTION qcache_watch(tbl regclass, VARIADIC templates text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d regclass;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF templates IS NULL THEN
		templates := '{}';
	END IF;
	PERFORM @extschema@.qcache_check_templates(tbl, templates);
	IF cardinality(templates) > 0 AND EXISTS (
		SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgparentid <> 0
		  AND tgname = 'qcache_watch_row') THEN
		RAISE NOTICE 'the templates of % come from its parent''s qcache_watch', tbl;
	END IF;
	PERFORM @extschema@.qcache_watch_install(tbl, templates);
	FOR d IN SELECT * FROM @extschema@.qcache_descendants(tbl) LOOP
		PERFORM @extschema@.qcache_watch_install(d, templates);
	END LOOP;
END
$$;

-- Drop the triggers qcache_watch created on this table and its
-- descendants (not other triggers).
CREATE OR REPLACE FUNCTION qcache_unwatch(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOR r IN
		SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger
		WHERE tgrelid IN (SELECT tbl UNION ALL
		                  SELECT * FROM @extschema@.qcache_descendants(tbl))
		  AND tgparentid = 0
		  AND tgname IN ('qcache_watch_table', 'qcache_watch_row',
		                 'qcache_watch_truncate', 'qcache_watch_replica')
		ORDER BY tgrelid = tbl DESC
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
	END LOOP;
END
$$;

-- A table that became an inheritance child or a partition: if one of its
-- ancestors is watched, watch it with the nearest one's templates.
-- Called by the module (ProcessUtility hook), which checks no privilege:
-- SECURITY DEFINER, so that the owner of a new partition need not be
-- granted qcache_watch.  Returns whether it watched the table.
CREATE FUNCTION qcache_watch_child(tbl regclass)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	anc regclass;
	b bytea;
	n int;
	p int;
	templates text[] := '{}';
BEGIN
	WITH RECURSIVE a(relid, depth) AS (
		SELECT inhparent, 1 FROM pg_inherits WHERE inhrelid = tbl
		UNION ALL
		SELECT i.inhparent, a.depth + 1 FROM pg_inherits i JOIN a ON i.inhrelid = a.relid
		WHERE a.depth < 1000)
	SELECT a.relid INTO anc FROM a
	WHERE EXISTS (SELECT FROM pg_trigger
	              WHERE tgrelid = a.relid AND tgparentid = 0
	                AND tgname = 'qcache_watch_table')
	ORDER BY a.depth LIMIT 1;
	IF anc IS NULL THEN
		RETURN false;
	END IF;
	-- its templates: the arguments of its own TRUNCATE trigger
	SELECT tgargs, tgnargs INTO b, n FROM pg_trigger
	WHERE tgrelid = anc AND tgparentid = 0 AND tgname = 'qcache_watch_truncate';
	FOR i IN 1 .. coalesce(n, 0) LOOP
		p := position('\x00'::bytea IN b);
		templates := templates || convert_from(substring(b FROM 1 FOR p - 1),
		                                       getdatabaseencoding());
		b := substring(b FROM p + 1);
	END LOOP;
	PERFORM @extschema@.qcache_watch_install(tbl, templates);
	RETURN true;
END
$$;

-- A table about to be attached as a partition of a watched partitioned
-- table: drop its own row triggers of qcache_watch, whose names the
-- parent's clones are about to take (PostgreSQL refuses a clone whose name
-- is taken).  qcache_watch_child then watches it with the parent's
-- templates.  Called by the module before ALTER TABLE ... ATTACH
-- PARTITION; SECURITY DEFINER as qcache_watch_child.
CREATE FUNCTION qcache_watch_attaching(tbl regclass, parent regclass)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t name;
	found boolean := false;
BEGIN
	FOR t IN
		SELECT c.tgname FROM pg_trigger c
		WHERE c.tgrelid = tbl AND c.tgparentid = 0
		  AND c.tgname IN ('qcache_watch_replica', 'qcache_watch_row')
		  AND EXISTS (SELECT FROM pg_trigger p
		              WHERE p.tgrelid = parent AND p.tgname = c.tgname)
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
		found := true;
	END LOOP;
	RETURN found;
END
$$;

-- qcache_watch_install and qcache_descendants check nothing that CREATE
-- TRIGGER does not (qcache_watch calls them as its caller), so they stay
-- executable; the two the module calls as the extension's owner do not.
REVOKE ALL ON FUNCTION qcache_watch_child(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_watch_attaching(regclass, regclass) FROM PUBLIC;

-- Tables watched before 1.3 get the replica row trigger now, so that rows
-- applied by logical replication invalidate without a new qcache_watch
-- call.  Nothing else changes: their templates, and their children's own
-- watches, stay as they are (qcache_watch on a parent now also watches its
-- children; call it again for that).  Parents first, so that a partition
-- takes its parent's clone.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT t.tgrelid::regclass AS tbl
		FROM pg_trigger t
		WHERE t.tgname = 'qcache_watch_table' AND t.tgparentid = 0
		ORDER BY (SELECT count(*) FROM pg_partition_ancestors(t.tgrelid)), t.tgrelid
	LOOP
		IF NOT EXISTS (SELECT FROM pg_trigger
		               WHERE tgrelid = r.tbl AND tgname = 'qcache_watch_replica') THEN
			EXECUTE format('CREATE TRIGGER qcache_watch_replica'
				' AFTER INSERT OR UPDATE OR DELETE ON %s'
				' FOR EACH ROW EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger()', r.tbl);
			EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER qcache_watch_replica', r.tbl);
		END IF;
	END LOOP;
END
$$;

-- ======================================================================
-- end of issue 10's block
-- ======================================================================
