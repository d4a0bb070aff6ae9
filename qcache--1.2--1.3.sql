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
