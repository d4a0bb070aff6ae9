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

-- Create the invalidation triggers of a table: its own tag on every
-- INSERT, UPDATE, DELETE and TRUNCATE, and the templates' tags for each
-- changed row (OLD and NEW).  Calling it again replaces them.
CREATE FUNCTION qcache_watch(tbl regclass, VARIADIC templates text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	args text;
BEGIN
	IF templates IS NULL THEN
		templates := '{}';
	END IF;
	PERFORM @extschema@.qcache_check_templates(tbl, templates);
	EXECUTE format('CREATE OR REPLACE TRIGGER qcache_watch_table'
		' AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
		' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger()', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS qcache_watch_row ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS qcache_watch_truncate ON %s', tbl);
	IF cardinality(templates) > 0 THEN
		SELECT string_agg(quote_literal(t), ', ') INTO args FROM unnest(templates) t;
		EXECUTE format('CREATE TRIGGER qcache_watch_row'
			' AFTER INSERT OR UPDATE OR DELETE ON %s'
			' FOR EACH ROW EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger(%s)',
			tbl, args);
		EXECUTE format('CREATE TRIGGER qcache_watch_truncate'
			' AFTER TRUNCATE ON %s'
			' FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qcache_invalidate_trigger(%s)',
			tbl, args);
	END IF;
END
$$;

-- Drop the triggers qcache_watch created.
CREATE FUNCTION qcache_unwatch(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('DROP TRIGGER IF EXISTS qcache_watch_table ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS qcache_watch_row ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS qcache_watch_truncate ON %s', tbl);
END
$$;

-- Invalidating is for the roles a DBA grants it to, as in 1.0.
REVOKE ALL ON FUNCTION qcache_invalidate_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_watch(regclass, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_unwatch(regclass) FROM PUBLIC;
