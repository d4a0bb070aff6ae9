/* qcache--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION qcache UPDATE TO '1.3'" to load this file. \quit

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
