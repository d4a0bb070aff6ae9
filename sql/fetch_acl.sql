--
-- fetch_acl: qcache_fetch never hands a role rows it could not read itself
-- (SPEC 8).  On a hit it checks the caller's SELECT privilege on the tables
-- and views the entry was computed from; a result that row-level security
-- shaped is scoped to the role that computed it; a result computed without
-- row-level security is not served to a role for which a table of it has
-- row-level security enabled.  A role that may not be served runs the query
-- itself and gets what the query gives it, or its error.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

-- Runs a qcache_fetch and says what the caller got: its rows, or the
-- SQLSTATE of its error (messages are left out on purpose).
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r jsonb;
BEGIN
	EXECUTE q INTO r;
	RETURN 'rows: ' || r::text;
EXCEPTION WHEN OTHERS THEN
	RETURN 'error: ' || SQLSTATE;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

CREATE ROLE regress_qcache_acl_a;
CREATE ROLE regress_qcache_acl_b;
CREATE ROLE regress_qcache_acl_owner;
GRANT EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer)
	TO regress_qcache_acl_a, regress_qcache_acl_b, regress_qcache_acl_owner;

--
-- Table privileges are checked on a hit.
--
CREATE TABLE acl_secret (id int, secret text);
INSERT INTO acl_secret VALUES (1, 'for a only');
GRANT SELECT ON acl_secret TO regress_qcache_acl_a;
CREATE VIEW acl_secret_view AS SELECT * FROM acl_secret;
GRANT SELECT ON acl_secret_view TO regress_qcache_acl_a;

SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:secret', 'SELECT * FROM acl_secret');
SELECT qcache_fetch('acl:secret-view', 'SELECT * FROM acl_secret_view');
RESET ROLE;
-- b may not read the table: the cached rows are not handed to it, it gets
-- 42501 (insufficient_privilege), and the entry stays.
SET ROLE regress_qcache_acl_b;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret', 'SELECT * FROM acl_secret')$$) AS b_hit;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret-view', 'SELECT * FROM acl_secret_view')$$) AS b_view_hit;
RESET ROLE;
-- a still gets its hits.
SELECT qcache_reset_stats();
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:secret', 'SELECT * FROM acl_secret');
SELECT qcache_fetch('acl:secret-view', 'SELECT * FROM acl_secret_view');
RESET ROLE;
SELECT hits, misses FROM qcache_stats;
-- Column privileges are not table privileges: b may read the column, so
-- it runs the query itself and gets the same rows.
GRANT SELECT (id) ON acl_secret TO regress_qcache_acl_b;
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:secret-id', 'SELECT id FROM acl_secret');
RESET ROLE;
SET ROLE regress_qcache_acl_b;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret', 'SELECT * FROM acl_secret')$$) AS b_all_columns;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret-id', 'SELECT id FROM acl_secret')$$) AS b_id_column;
RESET ROLE;
REVOKE SELECT (id) ON acl_secret FROM regress_qcache_acl_b;
-- Once a loses the privilege, a loses the hit too.
REVOKE SELECT ON acl_secret FROM regress_qcache_acl_a;
SET ROLE regress_qcache_acl_a;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret', 'SELECT * FROM acl_secret')$$) AS a_revoked;
RESET ROLE;
GRANT SELECT ON acl_secret TO regress_qcache_acl_a;
-- A role granted only the view (the usual way to publish one) gets the
-- view's rows, from the cache or from the query.
GRANT SELECT ON acl_secret_view TO regress_qcache_acl_b;
SET ROLE regress_qcache_acl_b;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret-view', 'SELECT * FROM acl_secret_view')$$) AS b_view_granted;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret-view', 'SELECT * FROM acl_secret_view')$$) AS b_view_granted;
RESET ROLE;
REVOKE SELECT ON acl_secret_view FROM regress_qcache_acl_b;
-- Whatever query b names under a's key: the entry's own tables decide,
-- and b gets what its own query gives (the key is the caller's choice).
SET ROLE regress_qcache_acl_b;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:secret', 'SELECT 1 AS one')$$) AS b_other_query;
RESET ROLE;
-- A dropped table's entries are served to nobody.
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:dropped', 'SELECT * FROM acl_secret');
RESET ROLE;
DROP VIEW acl_secret_view;
DROP TABLE acl_secret;
CREATE TABLE acl_secret (id int, secret text);
GRANT SELECT ON acl_secret TO regress_qcache_acl_a;
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:dropped', 'SELECT * FROM acl_secret');
RESET ROLE;

--
-- Row-level security: each role gets the rows it may see.
--
CREATE TABLE acl_rls (owner name, v text);
INSERT INTO acl_rls VALUES ('regress_qcache_acl_a', 'a row'), ('regress_qcache_acl_b', 'b row');
ALTER TABLE acl_rls OWNER TO regress_qcache_acl_owner;
ALTER TABLE acl_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY acl_rls_own ON acl_rls USING (owner = current_user);
GRANT SELECT ON acl_rls TO regress_qcache_acl_a, regress_qcache_acl_b;

SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:rls', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
SET ROLE regress_qcache_acl_b;
SELECT qcache_fetch('acl:rls', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
SELECT qcache_reset_stats();
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:rls', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
SET ROLE regress_qcache_acl_b;
SELECT qcache_fetch('acl:rls', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
SELECT hits, misses FROM qcache_stats;
-- The role-scoped results are listed under the key, and qcache_get cannot
-- read them.
SELECT count(*) AS listed FROM qcache_entries WHERE key = 'acl:rls';
SELECT qcache_get('acl:rls') AS get;
-- The table's owner is not subject to its policy: its result (all rows) is
-- not served to a or b, and theirs are not served to it.
SET ROLE regress_qcache_acl_owner;
SELECT qcache_fetch('acl:rls-owner-first', 'SELECT v FROM acl_rls ORDER BY v');
SELECT qcache_fetch('acl:rls', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:rls-owner-first', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
SET ROLE regress_qcache_acl_b;
SELECT qcache_fetch('acl:rls-owner-first', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;
-- A superuser's result neither.
SELECT qcache_fetch('acl:rls-super-first', 'SELECT v FROM acl_rls ORDER BY v');
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:rls-super-first', 'SELECT v FROM acl_rls ORDER BY v');
RESET ROLE;

-- Row-level security enabled after a result was cached: the result,
-- computed without it, is not served to a role it now applies to.
CREATE TABLE acl_late (owner name, v text);
INSERT INTO acl_late VALUES ('regress_qcache_acl_a', 'a row'), ('regress_qcache_acl_b', 'b row');
ALTER TABLE acl_late OWNER TO regress_qcache_acl_owner;
GRANT SELECT ON acl_late TO regress_qcache_acl_a;
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:late', 'SELECT v FROM acl_late ORDER BY v');
RESET ROLE;
ALTER TABLE acl_late ENABLE ROW LEVEL SECURITY;
CREATE POLICY acl_late_own ON acl_late USING (owner = current_user);
SET ROLE regress_qcache_acl_a;
SELECT qcache_fetch('acl:late', 'SELECT v FROM acl_late ORDER BY v');
RESET ROLE;
-- Through a view owned by the table's owner, the policy does not apply
-- (the view reads as its owner): all rows, for a as for the owner.
CREATE VIEW acl_late_view AS SELECT v FROM acl_late;
ALTER VIEW acl_late_view OWNER TO regress_qcache_acl_owner;
GRANT SELECT ON acl_late_view TO regress_qcache_acl_a;
SET ROLE regress_qcache_acl_a;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:late-view', 'SELECT v FROM acl_late_view ORDER BY v')$$) AS a_view;
RESET ROLE;
SET ROLE regress_qcache_acl_b;
SELECT pg_temp.try($$SELECT qcache_fetch('acl:late-view', 'SELECT v FROM acl_late_view ORDER BY v')$$) AS b_view;
RESET ROLE;

DROP VIEW acl_late_view;
DROP TABLE acl_rls, acl_late, acl_secret;
REVOKE EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer)
	FROM regress_qcache_acl_a, regress_qcache_acl_b, regress_qcache_acl_owner;
DROP ROLE regress_qcache_acl_a, regress_qcache_acl_b, regress_qcache_acl_owner;
SELECT qcache_clear() >= 0 AS cleared;
