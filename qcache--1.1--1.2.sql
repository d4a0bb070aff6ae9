/* qcache--1.1--1.2.sql: qcache_fetch_json */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qcache UPDATE TO '1.2'" to load this file. \quit

-- qcache_fetch, kept and returned as JSON text: the same rows, the same
-- text as qcache_fetch(...)::text, but a hit is sent without turning jsonb
-- into text, which is most of the cost of sending a large result.
CREATE FUNCTION qcache_fetch_json(key text, query text,
	ttl integer DEFAULT NULL, tags text[] DEFAULT NULL)
RETURNS json
AS 'MODULE_PATHNAME', 'qcache_fetch_json'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qcache_fetch_json(text, text, integer, text[]) FROM PUBLIC;
