/* qcache--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qcache UPDATE TO '1.3'" to load this file. \quit

-- ---------- issue 9: the security model (SPEC section 8) ----------

-- What qcache_fetch(key, query) would return from the cache now, under
-- the same rule (the caller's privileges and settings), without running
-- the query; NULL where qcache_fetch would run it.
CREATE FUNCTION qcache_fetch_cached(key text, query text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'qcache_fetch_cached'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qcache_fetch_cached(text, text) FROM PUBLIC;

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
		' @extschema@.qcache_fetch(text, text, integer, text[]),'
		' @extschema@.qcache_fetch_json(text, text, integer, text[]),'
		' @extschema@.qcache_fetch_cached(text, text)'
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
		' @extschema@.qcache_set(text, jsonb, integer, text[]),'
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
		' @extschema@.qcache_fetch(text, text, integer, text[]),'
		' @extschema@.qcache_fetch_json(text, text, integer, text[]),'
		' @extschema@.qcache_fetch_cached(text, text),'
		' @extschema@.qcache_set(text, jsonb, integer, text[]),'
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
