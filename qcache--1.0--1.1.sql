/* qcache--1.0--1.1.sql: invalidation from writes */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qcache UPDATE TO '1.1'" to load this file. \quit

-- The trigger function.  Arguments are tag templates such as 'product:{id}';
-- none: the table's own tag, table:<schema>.<name>.  The tags are
-- invalidated when the transaction commits.
CREATE FUNCTION qcache_invalidate_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'qcache_invalidate_trigger'
LANGUAGE C;

-- Raises the error a template would raise when its trigger fires; returns
-- whether any template refers to columns.
CREATE FUNCTION qcache_check_templates(tbl regclass, templates text[])
RETURNS boolean
AS 'MODULE_PATHNAME', 'qcache_check_templates'
LANGUAGE C STRICT STABLE;

-- Create the invalidation triggers of a table: its own tag BEFORE every
-- INSERT, UPDATE, DELETE and TRUNCATE statement (so that the transaction is
-- a writer from the start of the statement, RETURNING included), and the
-- templates' tags for each changed row (OLD and NEW).  They fire in every
-- session_replication_role (ENABLE ALWAYS), so that rows applied by logical
-- replication invalidate too.  Calling it again replaces them.  Triggers a
-- partition inherited from its parent's qcache_watch are left alone.
CREATE FUNCTION qcache_watch(tbl regclass, VARIADIC templates text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	args text;
	t name;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF templates IS NULL THEN
		templates := '{}';
	END IF;
	PERFORM @extschema@.qcache_check_templates(tbl, templates);
	FOR t IN
		SELECT tgname FROM pg_trigger
		WHERE tgrelid = tbl AND tgparentid = 0
		  AND tgname IN ('qcache_watch_table', 'qcache_watch_row', 'qcache_watch_truncate')
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
	END LOOP;
	EXECUTE format('CREATE TRIGGER qcache_watch_table'
		' BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
		' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger()', tbl);
	EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER qcache_watch_table', tbl);
	IF cardinality(templates) > 0 AND EXISTS (
		SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgparentid <> 0
		  AND tgname IN ('qcache_watch_row', 'qcache_watch_truncate')) THEN
		RAISE NOTICE 'the templates of % come from its parent''s qcache_watch', tbl;
	ELSIF cardinality(templates) > 0 THEN
		SELECT string_agg(quote_literal(tmpl), ', ') INTO args FROM unnest(templates) tmpl;
		EXECUTE format('CREATE TRIGGER qcache_watch_row'
			' AFTER INSERT OR UPDATE OR DELETE ON %s'
			' FOR EACH ROW EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger(%s)',
			tbl, args);
		EXECUTE format('CREATE TRIGGER qcache_watch_truncate'
			' AFTER TRUNCATE ON %s'
			' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger(%s)',
			tbl, args);
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER qcache_watch_row', tbl);
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER qcache_watch_truncate', tbl);
	END IF;
END
$$;

-- Drop the triggers qcache_watch created on this table (not those a
-- partition inherited from its parent).
CREATE FUNCTION qcache_unwatch(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t name;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOR t IN
		SELECT tgname FROM pg_trigger
		WHERE tgrelid = tbl AND tgparentid = 0
		  AND tgname IN ('qcache_watch_table', 'qcache_watch_row', 'qcache_watch_truncate')
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
	END LOOP;
END
$$;

-- Invalidating is for the roles a DBA grants it to, as in 1.0.
REVOKE ALL ON FUNCTION qcache_invalidate_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_watch(regclass, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_unwatch(regclass) FROM PUBLIC;
