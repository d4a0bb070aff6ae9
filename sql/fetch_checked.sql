--
-- fetch_checked: qcache_fetch remembers, per backend, the query texts it
-- has accepted.  What it runs must still be exactly the one SELECT it
-- checked: a remembered text must not be trusted under settings that lex
-- it differently (standard_conforming_strings), and the text of a running
-- qcache_fetch must stay valid while a nested qcache_fetch runs.
--
-- Kept last in the schedule: before the fix of the first case the server
-- process crashes (SIGSEGV) here.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- Runs a statement and reports ok or its SQLSTATE.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;

CREATE TABLE checked_t (id int);
INSERT INTO checked_t VALUES (1), (2);

--
-- The same text under standard_conforming_strings off and on.  Off, each
-- of these is one SELECT of one string literal, and is accepted.  On, the
-- backslash no longer escapes the quote: the text is not valid SQL, and
-- inside the wrapper it would close the subquery and add statements.  It
-- must be refused (as the syntax error it is), never run.
--
SET escape_string_warning = off;
SET standard_conforming_strings = off;
SELECT qcache_fetch('checked:scs1',
	$q$SELECT 'a\' ) qcache_r; SELECT 1 AS z FROM (SELECT 1 /* ' -- */$q$) AS off1;
SELECT qcache_fetch('checked:scs2',
	$q$SELECT 'a\' ) qcache_r; DELETE FROM checked_t; SELECT 1 AS z FROM (SELECT 1 /* ' -- */$q$) AS off2;
SET standard_conforming_strings = on;
SELECT pg_temp.try($t$SELECT qcache_fetch('checked:scs3',
	$q$SELECT 'a\' ) qcache_r; DELETE FROM checked_t; SELECT 1 AS z FROM (SELECT 1 /* ' -- */$q$)$t$) AS on_delete;
SELECT pg_temp.try($t$SELECT qcache_fetch('checked:scs4',
	$q$SELECT 'a\' ) qcache_r; SELECT 1 AS z FROM (SELECT 1 /* ' -- */$q$)$t$) AS on_select;
SELECT count(*) AS rows_left FROM checked_t;
SELECT NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'checked:scs3') AS scs3_not_cached,
       NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'checked:scs4') AS scs4_not_cached;
RESET standard_conforming_strings;
RESET escape_string_warning;

--
-- A qcache_fetch inside the query of another.
--
SELECT qcache_fetch('checked:outer',
	'SELECT qcache_fetch(''checked:inner'', ''SELECT 1 AS one'') AS inner_rows');
SELECT qcache_fetch_cached('checked:inner', 'SELECT 1 AS one');
-- The outer result is not cached: qcache cannot follow what the inner
-- fetch depends on.
SELECT EXISTS (SELECT FROM qcache_entries WHERE key = 'checked:outer') AS outer_cached;

-- The inner query text is chosen to take the outer text's place in the
-- per-backend list of accepted queries (hashtext is the hash it uses), and
-- the outer query fails after the inner call: its error must report the
-- outer statement, not the inner one (whose text would have been written
-- over the outer's, freed by the inner call while still in use).
CREATE TABLE checked_inner (q text);
SELECT 'SELECT qcache_fetch(''checked:in'', (SELECT q FROM checked_inner)) AS v, '
       '1 / (SELECT count(*)::int - 1 FROM checked_inner) AS boom' AS outer_q \gset
INSERT INTO checked_inner
SELECT 'SELECT ' || n || ' AS n /* ' || repeat('p', 180) || ' */'
FROM generate_series(1, 100000) n
WHERE hashtext('SELECT ' || n || ' AS n /* ' || repeat('p', 180) || ' */') & 63 =
      hashtext(:'outer_q') & 63
LIMIT 1;
SELECT count(*) AS found FROM checked_inner;
CREATE FUNCTION pg_temp.context_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	ctx text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
	RETURN SQLSTATE || ', context shows the inner query: ' ||
		(position(repeat('p', 100) IN ctx) > 0);
END
$$;
SELECT pg_temp.context_of(format('SELECT qcache_fetch(%L, %L)', 'checked:out', :'outer_q'));
SELECT EXISTS (SELECT FROM qcache_entries WHERE key = 'checked:in') AS inner_cached,
       NOT EXISTS (SELECT FROM qcache_entries WHERE key = 'checked:out') AS outer_not_cached;

DROP TABLE checked_t, checked_inner;
SELECT qcache_clear() > 0 AS cleared;
