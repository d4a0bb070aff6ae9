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
