--
-- The base settings and the search_path are part of every fetch key
-- (security.c).  A backend keeps their digest and computes it again only
-- when one of them changed: each change below, in the same session, in
-- the same statement, or inside a function's SET clause, must reach the
-- key, and changing it back must find the first entry again.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
SELECT qcache_clear() >= 0 AS cleared;

CREATE FUNCTION sd_count(OUT hits bigint, OUT misses bigint)
LANGUAGE sql AS 'SELECT hits, misses FROM qcache_stats';

-- a query whose rows print differently under each setting changed below
CREATE VIEW sd_q(q) AS VALUES (
  'SELECT ''2024-01-02 03:04:05+00''::timestamptz::text AS t, '
  '(1 / 3::float8)::text AS f, ''\x01''::bytea::text AS b, '
  'quote_ident(''a'') AS i');

SET TimeZone = 'UTC';
SET DateStyle = 'ISO, MDY';
SELECT qcache_fetch('sd', q) FROM sd_q;

-- a string setting (TimeZone)
SET TimeZone = 'Asia/Tokyo';
SELECT qcache_fetch('sd', q) FROM sd_q;
SET TimeZone = 'UTC';
SELECT qcache_fetch('sd', q) ->0->>'t' AS back_to_utc FROM sd_q;
-- set again to the same value: the same key (a hit)
SELECT misses AS m0 FROM sd_count() \gset
SET TimeZone = 'UTC';
SELECT qcache_fetch('sd', q) ->0->>'t' AS same_value FROM sd_q;
SELECT misses - :m0 AS new_misses FROM sd_count();

-- another string setting (DateStyle), an integer one (extra_float_digits),
-- an enum (bytea_output), a boolean (quote_all_identifiers)
SET DateStyle = 'SQL, DMY';
SELECT qcache_fetch('sd', q) ->0->>'t' AS sql_style FROM sd_q;
RESET DateStyle;
SET DateStyle = 'ISO, MDY';
SET extra_float_digits = 0;
SELECT qcache_fetch('sd', q) ->0->>'f' AS digits_0 FROM sd_q;
RESET extra_float_digits;
SET bytea_output = 'escape';
SELECT qcache_fetch('sd', q) ->0->>'b' AS escape FROM sd_q;
RESET bytea_output;
SET quote_all_identifiers = on;
SELECT qcache_fetch('sd', q) ->0->>'i' AS quoted FROM sd_q;
RESET quote_all_identifiers;
SELECT qcache_fetch('sd', q) AS all_back FROM sd_q;

-- changed and restored within one statement: set_config, then a
-- function's SET clause
SELECT qcache_fetch('sd', q) ->0->>'t' AS before,
       set_config('TimeZone', 'America/New_York', false) AS set,
       qcache_fetch('sd', q) ->0->>'t' AS after
FROM sd_q;
SET TimeZone = 'UTC';
CREATE FUNCTION sd_in_tokyo() RETURNS text LANGUAGE sql
SET TimeZone = 'Asia/Tokyo'
AS $$ SELECT qcache_fetch('sd', q) ->0->>'t' FROM sd_q $$;
SELECT qcache_fetch('sd', q) ->0->>'t' AS outside,
       sd_in_tokyo() AS inside,
       qcache_fetch('sd', q) ->0->>'t' AS outside_again
FROM sd_q;

-- the search_path: the same text resolves to another table
CREATE SCHEMA sd_a;
CREATE SCHEMA sd_b;
CREATE TABLE sd_a.t AS SELECT 'a' AS v;
CREATE TABLE sd_b.t AS SELECT 'b' AS v;
SET search_path = sd_a, public;
SELECT qcache_fetch('sdp', 'SELECT v FROM t') AS in_a;
SET search_path = sd_b, public;
SELECT qcache_fetch('sdp', 'SELECT v FROM t') AS in_b;
SET search_path = sd_a, public;
SELECT qcache_fetch('sdp', 'SELECT v FROM t') AS in_a_again;
RESET search_path;

RESET TimeZone;
RESET DateStyle;
DROP FUNCTION sd_in_tokyo();
DROP SCHEMA sd_a CASCADE;
DROP SCHEMA sd_b CASCADE;
DROP VIEW sd_q;
DROP FUNCTION sd_count();
