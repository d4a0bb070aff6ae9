/* qcache--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qcache UPDATE TO '1.3'" to load this file. \quit

-- ---------- issue 9: the security model (SPEC section 8) ----------

-- What qcache_fetch(key, query, params => params) would return from the
-- cache now, under the same rule (the caller's privileges and settings),
-- without running the query; NULL where qcache_fetch would run it.  A NULL
-- key is derived from the query and the parameters, as qcache_fetch does.
CREATE FUNCTION qcache_fetch_cached(key text, query text, params text[] DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'qcache_fetch_cached'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qcache_fetch_cached(text, text, text[]) FROM PUBLIC;

-- ---------- issue 13: read-through that applications expect (SPEC 11) ----------

-- qcache_fetch and qcache_fetch_json take the query's parameters ($1...)
-- as text, converted to the types PostgreSQL infers for them, as PREPARE
-- does; a NULL key is derived from the query and the parameters;
-- table_tags => false makes the entry depend on the given tags only (the
-- caller's responsibility); stale_ttl => n serves the value n seconds past
-- its ttl while one session recomputes it, and refresh_ahead => n starts
-- that recomputation n seconds before the ttl (stale-while-revalidate).  The new signatures replace the old ones; the
-- privileges granted on the old ones are granted again on the new ones.
ALTER FUNCTION qcache_fetch(text, text, integer, text[]) RENAME TO qcache_fetch_1_2;
CREATE FUNCTION qcache_fetch(key text, query text,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL,
	params text[] DEFAULT NULL, table_tags boolean DEFAULT true,
	stale_ttl integer DEFAULT NULL, refresh_ahead integer DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'qcache_fetch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer) FROM PUBLIC;

ALTER FUNCTION qcache_fetch_json(text, text, integer, text[]) RENAME TO qcache_fetch_json_1_2;
CREATE FUNCTION qcache_fetch_json(key text, query text,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL,
	params text[] DEFAULT NULL, table_tags boolean DEFAULT true,
	stale_ttl integer DEFAULT NULL, refresh_ahead integer DEFAULT NULL)
RETURNS json
AS 'MODULE_PATHNAME', 'qcache_fetch_json'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qcache_fetch_json(text, text, integer, text[], text[], boolean, integer, integer) FROM PUBLIC;

-- What was granted on the old signatures is granted on the new ones.
DO $$
DECLARE
	g record;
BEGIN
	FOR g IN
		SELECT n.new, a.grantee, a.is_grantable
		FROM (VALUES ('qcache_fetch_1_2(text, text, integer, text[])'::regprocedure,
					  'qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer)'::regprocedure),
					 ('qcache_fetch_json_1_2(text, text, integer, text[])'::regprocedure,
					  'qcache_fetch_json(text, text, integer, text[], text[], boolean, integer, integer)'::regprocedure)
			 ) AS n(old, new)
		JOIN pg_proc p ON p.oid = n.old, aclexplode(p.proacl) a
		WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', g.new,
					   CASE WHEN g.grantee = 0 THEN 'PUBLIC'
							ELSE g.grantee::regrole::text END,
					   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;
DROP FUNCTION qcache_fetch_1_2(text, text, integer, text[]);
DROP FUNCTION qcache_fetch_json_1_2(text, text, integer, text[]);

-- Typed rows: the cached result as rows of a row type, given as
-- NULL::that_type.  A cached SQL function is then
--   RETURNS SETOF t AS $$ SELECT * FROM qcache_fetch_rows(NULL::t, ...) $$
-- The values go through jsonb, which keeps numeric and bigint exact and
-- dates and times as text in the session's TimeZone and DateStyle (both
-- part of the cache key).
CREATE FUNCTION qcache_fetch_rows(rowtype anyelement, key text, query text,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL,
	params text[] DEFAULT NULL, table_tags boolean DEFAULT true,
	stale_ttl integer DEFAULT NULL, refresh_ahead integer DEFAULT NULL)
RETURNS SETOF anyelement
LANGUAGE sql STABLE PARALLEL UNSAFE
AS $$
	SELECT * FROM pg_catalog.jsonb_populate_recordset(rowtype,
		@extschema@.qcache_fetch(key, query, ttl, tags, params, table_tags,
								 stale_ttl, refresh_ahead))
$$;
REVOKE ALL ON FUNCTION qcache_fetch_rows(anyelement, text, text, integer, text[], text[], boolean, integer, integer) FROM PUBLIC;

-- A lookup that tells a miss from a cached JSON null.
CREATE FUNCTION qcache_lookup(key text, OUT hit boolean, OUT value jsonb)
LANGUAGE sql VOLATILE PARALLEL UNSAFE
AS $$
	SELECT v IS NOT NULL, v FROM (SELECT @extschema@.qcache_get(key) AS v) s
$$;

-- Leases: qcache_lease(key) hands one caller a token (NULL to the others
-- while it is held); qcache_set(..., lease => token) stores a value
-- computed after the token was granted, and refuses it if a write
-- invalidated one of its tags since.
CREATE FUNCTION qcache_lease(key text, lease_ms integer DEFAULT 10000)
RETURNS bigint
AS 'MODULE_PATHNAME', 'qcache_lease'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qcache_lease(text, integer) FROM PUBLIC;

ALTER FUNCTION qcache_set(text, jsonb, integer, text[]) RENAME TO qcache_set_1_2;
CREATE FUNCTION qcache_set(key text, value jsonb,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL, lease bigint DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qcache_set'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION qcache_set(text, jsonb, integer, text[], bigint) FROM PUBLIC;
DO $$
DECLARE
	g record;
BEGIN
	FOR g IN
		SELECT a.grantee, a.is_grantable
		FROM pg_proc p, aclexplode(p.proacl) a
		WHERE p.oid = 'qcache_set_1_2(text, jsonb, integer, text[])'::regprocedure
		  AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION qcache_set(text, jsonb, integer, text[], bigint) TO %s%s',
					   CASE WHEN g.grantee = 0 THEN 'PUBLIC'
							ELSE g.grantee::regrole::text END,
					   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;
DROP FUNCTION qcache_set_1_2(text, jsonb, integer, text[]);

-- ---------- issue 14: see what the cache does, set it up without guessing ----------

-- Is qcache in shared_preload_libraries of this server?  CREATE EXTENSION
-- (and this update) warns when it is not, and does not refuse: a dump
-- restored onto a server without the preload must restore, and the
-- watched tables' triggers let writes through there (nothing is cached,
-- so nothing can be stale).
CREATE FUNCTION qcache_preloaded()
RETURNS boolean
AS 'MODULE_PATHNAME', 'qcache_preloaded'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

DO $$
BEGIN
	IF NOT @extschema@.qcache_preloaded() THEN
		RAISE WARNING 'qcache is not loaded via "shared_preload_libraries"'
			USING DETAIL = 'Until it is, every qcache function raises an error, and the triggers of watched tables do nothing.',
				HINT = 'Add qcache to shared_preload_libraries in postgresql.conf and restart the server.';
	END IF;
END
$$;

-- qcache_stats: the same columns as 1.2, then why sets stored nothing:
-- sets_rejected is the sum of the sets_rejected_* columns; sets_disabled
-- counts the sets made while qcache.enabled was off (not in sets_rejected).
DROP VIEW qcache_stats;
DROP FUNCTION qcache_stats();
CREATE FUNCTION qcache_stats(
	OUT hits bigint,
	OUT misses bigint,
	OUT hit_ratio double precision,
	OUT l2_hits bigint,
	OUT l2_misses bigint,
	OUT l2_errors bigint,
	OUT sets bigint,
	OUT sets_rejected bigint,
	OUT evictions_expired bigint,
	OUT evictions_memory bigint,
	OUT invalidations bigint,
	OUT fetch_waits bigint,
	OUT entries bigint,
	OUT bytes_used bigint,
	OUT bytes_limit bigint,
	OUT stats_reset timestamp with time zone,
	OUT sets_rejected_too_large bigint,
	OUT sets_rejected_no_memory bigint,
	OUT sets_rejected_writer bigint,
	OUT sets_rejected_stale bigint,
	OUT sets_rejected_too_old bigint,
	OUT sets_rejected_redis bigint,
	OUT sets_rejected_standby bigint,
	OUT sets_rejected_uncacheable bigint,
	OUT sets_disabled bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'qcache_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW qcache_stats AS SELECT * FROM qcache_stats();
GRANT SELECT ON qcache_stats TO PUBLIC;

-- qcache_entries: the same columns as 1.2, then kind ('value': stored
-- with qcache_set; 'fetch': a qcache_fetch result), scope (the role a
-- caller-dependent fetch result is served to; NULL: shared), state
-- ('live', 'expired', 'stale': invalidated by a commit) and servable.
DROP VIEW qcache_entries;
DROP FUNCTION qcache_entries();
CREATE FUNCTION qcache_entries(
	OUT key text,
	OUT tags text[],
	OUT size bigint,
	OUT created timestamp with time zone,
	OUT expires timestamp with time zone,
	OUT hits bigint,
	OUT kind text,
	OUT scope name,
	OUT state text,
	OUT servable boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'qcache_entries'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW qcache_entries AS SELECT * FROM qcache_entries();
GRANT SELECT ON qcache_entries TO PUBLIC;

-- Per-namespace figures of the current database (the namespace of a key
-- is its part before the first ':'; a NULL namespace is "other").  Key
-- prefixes may name tenants or users, so this is for monitoring roles.
CREATE FUNCTION qcache_namespaces(
	OUT database name,
	OUT namespace text,
	OUT hits bigint,
	OUT misses bigint,
	OUT hit_ratio double precision,
	OUT sets bigint,
	OUT entries bigint,
	OUT bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'qcache_namespaces'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE VIEW qcache_namespaces AS
	SELECT * FROM qcache_namespaces() ORDER BY namespace NULLS LAST;
REVOKE ALL ON FUNCTION qcache_namespaces() FROM PUBLIC;
REVOKE ALL ON qcache_namespaces FROM PUBLIC;
GRANT SELECT ON qcache_namespaces TO pg_read_all_stats;

-- Grant a role what reading through the cache needs, or what writing,
-- invalidating and watching need (the reader set included); revoke both.
-- The install script revokes these functions from PUBLIC; these three are
-- revoked too, so that only their owner (or a role they are granted to,
-- holding the grant option) grants with them.
CREATE FUNCTION qcache_grant_reader(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('GRANT EXECUTE ON FUNCTION'
		' @extschema@.qcache_get(text),'
		' @extschema@.qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer),'
		' @extschema@.qcache_fetch_json(text, text, integer, text[], text[], boolean, integer, integer),'
		' @extschema@.qcache_fetch_rows(anyelement, text, text, integer, text[], text[], boolean, integer, integer),'
		' @extschema@.qcache_fetch_cached(text, text, text[])'
		' TO %s', role);
END
$$;

CREATE FUNCTION qcache_grant_writer(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@.qcache_grant_reader(role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION'
		' @extschema@.qcache_set(text, jsonb, integer, text[], bigint),'
		' @extschema@.qcache_lease(text, integer),'
		' @extschema@.qcache_invalidate(text),'
		' @extschema@.qcache_invalidate_tag(text),'
		' @extschema@.qcache_invalidate_prefix(text),'
		' @extschema@.qcache_clear(),'
		' @extschema@.qcache_watch(regclass, text[]),'
		' @extschema@.qcache_unwatch(regclass),'
		' @extschema@.qcache_invalidate_trigger()'
		' TO %s', role);
END
$$;

CREATE FUNCTION qcache_revoke(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	EXECUTE format('REVOKE EXECUTE ON FUNCTION'
		' @extschema@.qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer),'
		' @extschema@.qcache_fetch_json(text, text, integer, text[], text[], boolean, integer, integer),'
		' @extschema@.qcache_fetch_rows(anyelement, text, text, integer, text[], text[], boolean, integer, integer),'
		' @extschema@.qcache_fetch_cached(text, text, text[]),'
		' @extschema@.qcache_set(text, jsonb, integer, text[], bigint),'
		' @extschema@.qcache_lease(text, integer),'
		' @extschema@.qcache_invalidate(text),'
		' @extschema@.qcache_invalidate_tag(text),'
		' @extschema@.qcache_invalidate_prefix(text),'
		' @extschema@.qcache_clear(),'
		' @extschema@.qcache_watch(regclass, text[]),'
		' @extschema@.qcache_unwatch(regclass),'
		' @extschema@.qcache_invalidate_trigger()'
		' FROM %s', role);
END
$$;

REVOKE ALL ON FUNCTION qcache_grant_reader(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_grant_writer(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_revoke(regrole) FROM PUBLIC;
-- ---------------------------------------------------------------------------
-- Issue 11 (the Redis level): its state, as this node sees it.
--   state        off, up, down or recovering (paying what it owes)
--   since        when it entered that state
--   last_error   the last failure (never a password), and when
--   skipped      writes and invalidations not sent to Redis, owed instead
--   owed         items this node owes Redis now; owes_all: everything
--   paid         items paid back so far
--   serving      whether backends read and write Redis now (the breaker)
-- ---------------------------------------------------------------------------
CREATE FUNCTION qcache_redis_status(
	OUT state text,
	OUT since timestamp with time zone,
	OUT last_error text,
	OUT last_error_at timestamp with time zone,
	OUT skipped bigint,
	OUT owed integer,
	OUT owes_all boolean,
	OUT paid bigint,
	OUT serving boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'qcache_redis_status'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW qcache_redis AS SELECT * FROM qcache_redis_status();

GRANT SELECT ON qcache_redis TO PUBLIC;
-- end of issue 11's block
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

-- ---------- issue 15: hot standbys, with invalidations in the WAL (SPEC 12) ----------

-- Where this server stands with invalidations carried in the WAL
-- (qcache.wal_invalidation on the primary):
--   'off'      a primary that does not write them;
--   'writing'  a primary that writes them;
--   'waiting'  a standby that has not heard the primary's state since it
--              started (or heard 'off'): it stores no value with tags and
--              no qcache_fetch result;
--   'hearing'  a standby that stores them, under the same guarantee.
CREATE FUNCTION qcache_wal_status()
RETURNS text
AS 'MODULE_PATHNAME', 'qcache_wal_status'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
