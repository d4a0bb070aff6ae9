/* qcache--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION qcache" to load this file. \quit

-- Reading

CREATE FUNCTION qcache_get(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'qcache_get'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

-- Writing

CREATE FUNCTION qcache_set(key text, value jsonb,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qcache_set'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION qcache_fetch(key text, query text,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'qcache_fetch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qcache_invalidate(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qcache_invalidate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION qcache_invalidate_tag(tag text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'qcache_invalidate_tag'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION qcache_invalidate_prefix(prefix text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'qcache_invalidate_prefix'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION qcache_clear()
RETURNS bigint
AS 'MODULE_PATHNAME', 'qcache_clear'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Observing

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
	OUT stats_reset timestamp with time zone)
RETURNS record
AS 'MODULE_PATHNAME', 'qcache_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW qcache_stats AS SELECT * FROM qcache_stats();

CREATE FUNCTION qcache_entries(
	OUT key text,
	OUT tags text[],
	OUT size bigint,
	OUT created timestamp with time zone,
	OUT expires timestamp with time zone,
	OUT hits bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'qcache_entries'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW qcache_entries AS SELECT * FROM qcache_entries();

CREATE FUNCTION qcache_reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'qcache_reset_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

-- Privileges: reading is for everyone; writing, invalidating and clearing
-- are for the roles a DBA grants them to.

REVOKE ALL ON FUNCTION qcache_set(text, jsonb, integer, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_fetch(text, text, integer, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_invalidate(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_invalidate_tag(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_invalidate_prefix(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_clear() FROM PUBLIC;
REVOKE ALL ON FUNCTION qcache_reset_stats() FROM PUBLIC;

GRANT SELECT ON qcache_stats, qcache_entries TO PUBLIC;
