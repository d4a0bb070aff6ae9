--
-- security: shared query results never leak (SPEC section 8).  Three
-- roles: alice may read the secret table, bob may not, carol has column
-- privileges only.  Every case asserts what each role is returned: the
-- cached rows, its own rows (the query ran: ran() raises a NOTICE when a
-- query runs), or the error the query itself gives it.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
DROP ROLE IF EXISTS regress_qcs_alice;
DROP ROLE IF EXISTS regress_qcs_bob;
DROP ROLE IF EXISTS regress_qcs_carol;
RESET client_min_messages;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

CREATE ROLE regress_qcs_alice;
CREATE ROLE regress_qcs_bob;
CREATE ROLE regress_qcs_carol;
GRANT EXECUTE ON FUNCTION qcache_fetch(text, text, integer, text[], text[], boolean, integer, integer),
	qcache_fetch_json(text, text, integer, text[], text[], boolean, integer, integer),
	qcache_fetch_cached(text, text, text[]),
	qcache_set(text, jsonb, integer, text[], bigint)
	TO regress_qcs_alice, regress_qcs_bob, regress_qcs_carol;

-- sec_try(q): runs a statement as the current role; 'ok: <result>' or
-- 'SQLSTATE: message'.
CREATE FUNCTION sec_try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE q INTO r;
	RETURN 'ok: ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- ran(n): a NOTICE whenever a query calling it runs (the queries call it on
-- a subquery, which the planner cannot fold), so a hit shows none.  It
-- reads nothing of the caller (a current_user in it would make every
-- result role-scoped, and the shared path untested).
CREATE FUNCTION ran(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RAISE NOTICE 'query ran (%)', n;
	RETURN n;
END
$$;

CREATE TABLE secret (id int, v text);
INSERT INTO secret VALUES (1, 'alice-only');
GRANT SELECT ON secret TO regress_qcs_alice;

--
-- 1. qcache_get never returns a fetch result: not to bob, not to alice.
--
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('report', 'SELECT v, ran((SELECT 1)) FROM secret');
SET ROLE regress_qcs_bob;
SELECT qcache_get('report') AS bob_get;
SELECT sec_try($$SELECT qcache_fetch('report', 'SELECT v, ran((SELECT 1)) FROM secret')$$) AS bob_fetch;
SELECT sec_try($$SELECT qcache_fetch_json('report', 'SELECT v, ran((SELECT 1)) FROM secret')$$) AS bob_fetch_json;
SELECT qcache_fetch_cached('report', 'SELECT v, ran((SELECT 1)) FROM secret') AS bob_cached;
SET ROLE regress_qcs_alice;
SELECT qcache_get('report') AS alice_get;
SELECT qcache_fetch('report', 'SELECT v, ran((SELECT 1)) FROM secret') AS alice_hit;
RESET ROLE;

--
-- 2. Tables read inside functions: SQL (inlined, and not), PL/pgSQL.
--
CREATE FUNCTION secret_sql() RETURNS text LANGUAGE sql STABLE
	AS 'SELECT v FROM secret WHERE id = 1';
CREATE FUNCTION secret_srf() RETURNS SETOF text LANGUAGE sql VOLATILE
	AS 'SELECT v FROM secret';
CREATE FUNCTION secret_plpgsql() RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN (SELECT v FROM secret WHERE id = 1);
END
$$;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('fn:sql', 'SELECT secret_sql() AS v, ran((SELECT 2))') AS alice_sql,
       qcache_fetch('fn:srf', 'SELECT secret_srf() AS v, ran((SELECT 3))') AS alice_srf,
       qcache_fetch('fn:plpgsql', 'SELECT secret_plpgsql() AS v, ran((SELECT 4))') AS alice_plpgsql;
-- hits for alice
SELECT qcache_fetch('fn:sql', 'SELECT secret_sql() AS v, ran((SELECT 2))') AS alice_sql,
       qcache_fetch('fn:srf', 'SELECT secret_srf() AS v, ran((SELECT 3))') AS alice_srf,
       qcache_fetch('fn:plpgsql', 'SELECT secret_plpgsql() AS v, ran((SELECT 4))') AS alice_plpgsql;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('fn:sql', 'SELECT secret_sql() AS v, ran((SELECT 2))')$$) AS bob_sql;
SELECT sec_try($$SELECT qcache_fetch('fn:srf', 'SELECT secret_srf() AS v, ran((SELECT 3))')$$) AS bob_srf;
SELECT sec_try($$SELECT qcache_fetch('fn:plpgsql', 'SELECT secret_plpgsql() AS v, ran((SELECT 4))')$$) AS bob_plpgsql;
RESET ROLE;
-- The nested table is one of the entry's tags.
SELECT key, tags FROM qcache_entries WHERE key LIKE 'fn:%' ORDER BY key;

--
-- 3. Functions: EXECUTE is checked on hits; SECURITY DEFINER results are
--    not shared.
--
CREATE FUNCTION no_exec() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 7';
REVOKE EXECUTE ON FUNCTION no_exec() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION no_exec() TO regress_qcs_alice;
CREATE FUNCTION definer_secret() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	AS 'SELECT v FROM secret WHERE id = 1';
REVOKE EXECUTE ON FUNCTION definer_secret() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION definer_secret() TO regress_qcs_alice, regress_qcs_carol;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('fn:noexec', 'SELECT no_exec() AS n, ran((SELECT 5))') AS alice_noexec,
       qcache_fetch('fn:definer', 'SELECT definer_secret() AS v, ran((SELECT 6))') AS alice_definer;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('fn:noexec', 'SELECT no_exec() AS n, ran((SELECT 5))')$$) AS bob_noexec;
SELECT sec_try($$SELECT qcache_fetch('fn:definer', 'SELECT definer_secret() AS v, ran((SELECT 6))')$$) AS bob_definer;
-- carol may execute the definer function: she runs it herself (scoped).
SET ROLE regress_qcs_carol;
SELECT qcache_fetch('fn:definer', 'SELECT definer_secret() AS v, ran((SELECT 6))') AS carol_definer;
SELECT qcache_fetch('fn:definer', 'SELECT definer_secret() AS v, ran((SELECT 6))') AS carol_hit;
RESET ROLE;

--
-- 4. A view that filters by current_user: one result per role.
--
CREATE TABLE owned_rows (owner name, v text);
INSERT INTO owned_rows VALUES ('regress_qcs_alice', 'a-row'), ('regress_qcs_bob', 'b-row');
CREATE VIEW my_rows AS SELECT v FROM owned_rows WHERE owner = current_user;
GRANT SELECT ON my_rows TO PUBLIC;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('mine', 'SELECT v, ran((SELECT 7)) FROM my_rows') AS alice_mine;
SET ROLE regress_qcs_bob;
SELECT qcache_fetch('mine', 'SELECT v, ran((SELECT 7)) FROM my_rows') AS bob_mine;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('mine', 'SELECT v, ran((SELECT 7)) FROM my_rows') AS alice_hit;
RESET ROLE;

--
-- 5. pg_stat_activity (per-role columns): never cached; and a key names
--    one query, so another query under the key gets its own rows.
--
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('act', 'SELECT count(*) > 0 AS seen FROM pg_stat_activity WHERE query IS NOT NULL') AS alice_act;
SELECT count(*) AS act_entries FROM qcache_entries WHERE key = 'act';
SET ROLE regress_qcs_bob;
SELECT qcache_fetch('act', 'SELECT 1 AS one') AS bob_other_query;
RESET ROLE;

--
-- 6. search_path: the same text means another table.
--
CREATE SCHEMA sp_a;
CREATE SCHEMA sp_b;
CREATE TABLE sp_a.t (v text);
CREATE TABLE sp_b.t (v text);
INSERT INTO sp_a.t VALUES ('from a');
INSERT INTO sp_b.t VALUES ('from b');
SET search_path = sp_a, public;
SELECT qcache_fetch('sp', 'SELECT v, ran((SELECT 8)) FROM t') AS in_a;
SET search_path = sp_b, public;
SELECT qcache_fetch('sp', 'SELECT v, ran((SELECT 8)) FROM t') AS in_b;
SET search_path = sp_a, public;
SELECT qcache_fetch('sp', 'SELECT v, ran((SELECT 8)) FROM t') AS in_a_hit;
RESET search_path;

--
-- 7. A temporary table created after a result was cached shadows the
--    table the text named before: this session gets its own table's rows.
--
CREATE TABLE tmp (v text);
INSERT INTO tmp VALUES ('permanent');
SELECT qcache_fetch('tmp', 'SELECT v, ran((SELECT 9)) FROM tmp') AS before_temp;
CREATE TEMP TABLE tmp (v text);
INSERT INTO tmp VALUES ('temporary');
SELECT qcache_fetch('tmp', 'SELECT v, ran((SELECT 9)) FROM tmp') AS after_temp;
DROP TABLE pg_temp.tmp;
SELECT qcache_fetch('tmp', 'SELECT v, ran((SELECT 9)) FROM tmp') AS dropped_temp;

--
-- 8. Row-level security by a setting: one role, many tenants.
--
CREATE TABLE tenant_rows (tenant text, v text);
INSERT INTO tenant_rows VALUES ('1', 'tenant-1 row'), ('2', 'tenant-2 row');
ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_tenant ON tenant_rows
	USING (tenant = current_setting('app.tenant', true));
GRANT SELECT ON tenant_rows TO regress_qcs_bob;
SET ROLE regress_qcs_bob;
SET app.tenant = '1';
SELECT qcache_fetch('tenant', 'SELECT v, ran((SELECT 10)) FROM tenant_rows') AS tenant1;
SET app.tenant = '2';
SELECT qcache_fetch('tenant', 'SELECT v, ran((SELECT 10)) FROM tenant_rows') AS tenant2;
SET app.tenant = '1';
SELECT qcache_fetch('tenant', 'SELECT v, ran((SELECT 10)) FROM tenant_rows') AS tenant1_hit;
RESET app.tenant;
-- alice, who may not read the table, gets her own error.
SET ROLE regress_qcs_alice;
SET app.tenant = '1';
SELECT sec_try($$SELECT qcache_fetch('tenant', 'SELECT v, ran((SELECT 10)) FROM tenant_rows')$$) AS alice_tenant1;
RESET app.tenant;
RESET ROLE;
-- The owner (not subject to the policy) is not served bob's rows either.
SET app.tenant = '1';
SELECT qcache_fetch('tenant', 'SELECT v, ran((SELECT 10)) FROM tenant_rows') AS owner_tenant1;
RESET app.tenant;

--
-- 9. Poisoning: a qcache_set value is never a fetch result; a fetch of
--    another query under the key does not replace alice's entry.
--
SET ROLE regress_qcs_bob;
SELECT qcache_set('poison', '[{"v": "planted"}]') AS planted;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('poison', 'SELECT v, ran((SELECT 11)) FROM secret') AS alice_poison;
SET ROLE regress_qcs_bob;
SELECT qcache_fetch('poison', 'SELECT ''bob'' AS v, ran((SELECT 12))') AS bob_overwrite;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('poison', 'SELECT v, ran((SELECT 11)) FROM secret') AS alice_still;
RESET ROLE;

--
-- 10. qcache_check_templates tells nothing about a table the caller may not
--     create triggers on.
--
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_check_templates('secret', ARRAY['{nosuchcolumn}'])$$) AS bob_check;
SELECT sec_try($$SELECT qcache_check_templates('secret', ARRAY['{v}'])$$) AS bob_check_real;
RESET ROLE;
SELECT sec_try($$SELECT qcache_check_templates('secret', ARRAY['{nosuchcolumn}'])$$) AS owner_check;

--
-- 11. The query runs read-only, the functions it calls included: a write
--     is an error, nothing is written and nothing is cached.
--
CREATE TABLE read_log (at text);
CREATE SEQUENCE read_seq;
CREATE FUNCTION log_read() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO read_log VALUES ('read');
	RETURN 1;
END
$$;
CREATE FUNCTION log_read_sql() RETURNS int LANGUAGE sql VOLATILE AS $$
	INSERT INTO read_log VALUES ('sql'); SELECT 1;
$$;
CREATE FUNCTION make_table() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	CREATE TABLE made_in_fetch (x int);
	RETURN 1;
END
$$;
CREATE FUNCTION next_id() RETURNS bigint LANGUAGE sql VOLATILE
	AS $$SELECT nextval('read_seq')$$;
CREATE FUNCTION lock_rows() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM * FROM secret FOR UPDATE;
	RETURN 1;
END
$$;
SELECT sec_try($$SELECT qcache_fetch('w1', 'SELECT log_read()')$$) AS plpgsql_insert;
SELECT sec_try($$SELECT qcache_fetch('w2', 'SELECT log_read_sql()')$$) AS sql_insert;
SELECT sec_try($$SELECT qcache_fetch('w3', 'SELECT make_table()')$$) AS ddl;
SELECT sec_try($$SELECT qcache_fetch('w4', 'SELECT next_id()')$$) AS nextval;
SELECT sec_try($$SELECT qcache_fetch('w5', 'SELECT lock_rows()')$$) AS for_update;
SELECT sec_try($$SELECT qcache_fetch_json('w6', 'SELECT log_read()')$$) AS json_insert;
SELECT count(*) AS logged FROM read_log;
SELECT to_regclass('made_in_fetch') AS made, last_value, is_called FROM read_seq;
SELECT count(*) AS cached FROM qcache_entries WHERE key LIKE 'w_';
-- A writing transaction may still fetch; it is read-write again after.
BEGIN;
INSERT INTO read_log VALUES ('before');
SELECT qcache_fetch('w7', 'SELECT 1 AS one');
INSERT INTO read_log VALUES ('after');
COMMIT;
SELECT at FROM read_log ORDER BY at;
SHOW transaction_read_only;

--
-- 12. Column privileges: carol may read some columns.
--
CREATE TABLE colpriv (id int, pub text, priv text);
INSERT INTO colpriv VALUES (1, 'public part', 'private part');
GRANT SELECT ON colpriv TO regress_qcs_alice;
GRANT SELECT (id, pub) ON colpriv TO regress_qcs_carol;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('col:pub', 'SELECT id, pub, ran((SELECT 13)) FROM colpriv') AS alice_pub,
       qcache_fetch('col:priv', 'SELECT id, priv, ran((SELECT 14)) FROM colpriv') AS alice_priv;
SET ROLE regress_qcs_carol;
SELECT qcache_fetch('col:pub', 'SELECT id, pub, ran((SELECT 13)) FROM colpriv') AS carol_pub_hit;
SELECT sec_try($$SELECT qcache_fetch('col:priv', 'SELECT id, priv, ran((SELECT 14)) FROM colpriv')$$) AS carol_priv;
RESET ROLE;

--
-- 13. Schema USAGE: bob may read the table but not look into its schema.
--
CREATE SCHEMA hidden;
CREATE TABLE hidden.ht (v text);
INSERT INTO hidden.ht VALUES ('hidden row');
GRANT USAGE ON SCHEMA hidden TO regress_qcs_alice;
GRANT SELECT ON hidden.ht TO regress_qcs_alice, regress_qcs_bob;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('hidden', 'SELECT v, ran((SELECT 15)) FROM hidden.ht') AS alice_hidden;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('hidden', 'SELECT v, ran((SELECT 15)) FROM hidden.ht')$$) AS bob_hidden;
RESET ROLE;

--
-- 14. Large objects (lo_get reads pg_largeobject, which no trigger sees:
--     never cached, and every role runs it with its own privileges).
--
SELECT lo_from_bytea(424242, 'large secret') AS lo \gset
GRANT SELECT ON LARGE OBJECT :lo TO regress_qcs_alice;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('lo', format('SELECT convert_from(lo_get(%s), ''UTF8'') AS d, ran((SELECT 16))', :lo)) AS alice_lo;
SET ROLE regress_qcs_bob;
SELECT sec_try(format($$SELECT qcache_fetch('lo', 'SELECT convert_from(lo_get(%s), ''UTF8'') AS d, ran((SELECT 16))')$$, :lo)) AS bob_lo;
RESET ROLE;
SELECT count(*) AS lo_cached FROM qcache_entries WHERE key = 'lo';
SELECT lo_unlink(:lo);

--
-- 15. SET ROLE and SET SESSION AUTHORIZATION inside one session.
--
SET SESSION AUTHORIZATION regress_qcs_alice;
SELECT qcache_fetch('sess', 'SELECT v, ran((SELECT 17)) FROM secret') AS as_alice;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('sess', 'SELECT v, ran((SELECT 17)) FROM secret')$$) AS as_bob;
RESET SESSION AUTHORIZATION;
SET ROLE regress_qcs_carol;
SELECT sec_try($$SELECT qcache_fetch('sess', 'SELECT v, ran((SELECT 17)) FROM secret')$$) AS as_carol;
RESET ROLE;

--
-- 16. GRANT and REVOKE between a miss and a hit.
--
CREATE TABLE granted (v text);
INSERT INTO granted VALUES ('granted row');
GRANT SELECT ON granted TO regress_qcs_alice;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('grant', 'SELECT v, ran((SELECT 18)) FROM granted') AS alice_grant;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('grant', 'SELECT v, ran((SELECT 18)) FROM granted')$$) AS bob_before;
RESET ROLE;
GRANT SELECT ON granted TO regress_qcs_bob;
SET ROLE regress_qcs_bob;
SELECT qcache_fetch('grant', 'SELECT v, ran((SELECT 18)) FROM granted') AS bob_granted_hit;
RESET ROLE;
REVOKE SELECT ON granted FROM regress_qcs_bob;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('grant', 'SELECT v, ran((SELECT 18)) FROM granted')$$) AS bob_revoked;
RESET ROLE;
-- Membership counts: carol, made a member of alice, is served.
GRANT regress_qcs_alice TO regress_qcs_carol;
SET ROLE regress_qcs_carol;
SELECT qcache_fetch('grant', 'SELECT v, ran((SELECT 18)) FROM granted') AS carol_member_hit;
RESET ROLE;
REVOKE regress_qcs_alice FROM regress_qcs_carol;
SET ROLE regress_qcs_carol;
SELECT sec_try($$SELECT qcache_fetch('grant', 'SELECT v, ran((SELECT 18)) FROM granted')$$) AS carol_not_member;
RESET ROLE;

--
-- 17. What a review found, as regressions: inlined SQL functions reading
--     current_user; a SET role clause; an operator over a SQL function
--     whose EXECUTE is revoked; a setting outside the key; a schema named
--     in a cast; built-in functions that write.
--
CREATE FUNCTION owned_by_me() RETURNS SETOF owned_rows LANGUAGE sql STABLE
	AS 'SELECT * FROM owned_rows WHERE owner = current_user';
CREATE FUNCTION me() RETURNS text LANGUAGE sql STABLE AS 'SELECT current_user::text';
GRANT SELECT ON owned_rows TO PUBLIC;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('r:srf', 'SELECT v FROM owned_by_me()') AS alice_srf,
       qcache_fetch('r:me', 'SELECT me() AS who') AS alice_me;
SET ROLE regress_qcs_bob;
SELECT qcache_fetch('r:srf', 'SELECT v FROM owned_by_me()') AS bob_srf,
       qcache_fetch('r:me', 'SELECT me() AS who') AS bob_me;
RESET ROLE;
GRANT regress_qcs_alice TO regress_qcs_carol;
CREATE FUNCTION as_alice() RETURNS SETOF text LANGUAGE sql STABLE
	SET role = 'regress_qcs_alice' AS 'SELECT v FROM secret';
SET SESSION AUTHORIZATION regress_qcs_carol;
SELECT qcache_fetch('r:setrole', 'SELECT v FROM as_alice() v') AS carol_setrole;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('r:setrole', 'SELECT v FROM as_alice() v')$$) AS bob_setrole;
RESET SESSION AUTHORIZATION;
REVOKE regress_qcs_alice FROM regress_qcs_carol;
CREATE FUNCTION plus7(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2 + 7';
REVOKE EXECUTE ON FUNCTION plus7(int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plus7(int, int) TO regress_qcs_alice;
CREATE OPERATOR <+> (LEFTARG = int, RIGHTARG = int, FUNCTION = plus7);
CREATE TABLE nums (n int);
INSERT INTO nums VALUES (1);
GRANT SELECT ON nums TO PUBLIC;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('r:op', 'SELECT n <+> 1 AS x FROM nums') AS alice_op;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('r:op', 'SELECT n <+> 1 AS x FROM nums')$$) AS bob_op;
RESET ROLE;
SELECT qcache_fetch('r:quote', 'SELECT quote_ident(''abc'') AS q') AS plain;
SET quote_all_identifiers = on;
SELECT qcache_fetch('r:quote', 'SELECT quote_ident(''abc'') AS q') AS quoted;
RESET quote_all_identifiers;
CREATE SCHEMA hid;
CREATE TYPE hid.mood AS ENUM ('happy');
GRANT USAGE ON SCHEMA hid TO regress_qcs_alice;
SET ROLE regress_qcs_alice;
SELECT qcache_fetch('r:type', 'SELECT ''happy''::hid.mood AS m') AS alice_type;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('r:type', 'SELECT ''happy''::hid.mood AS m')$$) AS bob_type;
RESET ROLE;
SELECT sec_try($$SELECT qcache_fetch('r:w1', 'SELECT lo_from_bytea(0, ''x'') AS o')$$) AS lo_write,
       sec_try($$SELECT qcache_fetch('r:w2', 'SELECT pg_notify(''c'', ''x'')')$$) AS notify,
       sec_try($$SELECT qcache_fetch('r:w3', 'SELECT pg_advisory_lock(42)')$$) AS advisory,
       sec_try($$SELECT qcache_fetch('r:w4', 'SELECT set_config(''app.x'', ''1'', false)')$$) AS set_config;
SELECT (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory') AS advisory_locks;
SELECT current_setting('app.x', true) AS app_x;

--
-- 18. A second review: a function folded at planning (an operator over an
--     IMMUTABLE function) when the kept plan is reused; a PL/pgSQL plan
--     made before the fetch; a role's membership in a group its policy
--     names; parameter types under another search_path; an enum label
--     renamed.
--
CREATE FUNCTION e_secret(int, int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 1000 + $2';
REVOKE EXECUTE ON FUNCTION e_secret(int, int) FROM PUBLIC;
CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = e_secret);
SELECT qcache_fetch('e1', 'SELECT 4 ### 2 AS v') AS first;
SELECT qcache_invalidate('e1') AS invalidated;
SELECT qcache_fetch('e1', 'SELECT 4 ### 2 AS v') AS with_kept_plan;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('e1', 'SELECT 4 ### 2 AS v')$$) AS bob_folded;
RESET ROLE;
CREATE FUNCTION i_secret(int) RETURNS int STABLE LANGUAGE sql AS 'SELECT $1 * 1000 + 9';
REVOKE EXECUTE ON FUNCTION i_secret(int) FROM PUBLIC;
CREATE FUNCTION i_wrap(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT i_secret(x));
END
$$;
SELECT i_wrap(1) AS planned_before;
SELECT qcache_fetch('i1', 'SELECT i_wrap(5) AS v') AS owner_fetch;
SET ROLE regress_qcs_bob;
SELECT sec_try($$SELECT qcache_fetch('i1', 'SELECT i_wrap(5) AS v')$$) AS bob_wrapped;
RESET ROLE;
CREATE ROLE regress_qcs_grp;
GRANT regress_qcs_grp TO regress_qcs_carol;
CREATE TABLE f_docs (id int, body text);
INSERT INTO f_docs VALUES (1, 'public'), (2, 'confidential');
ALTER TABLE f_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON f_docs TO PUBLIC USING (id = 1);
CREATE POLICY grp_all ON f_docs TO regress_qcs_grp USING (true);
GRANT SELECT ON f_docs TO regress_qcs_carol;
SET ROLE regress_qcs_carol;
SELECT qcache_fetch('f7', 'SELECT id, body FROM f_docs ORDER BY id') AS in_group;
RESET ROLE;
REVOKE regress_qcs_grp FROM regress_qcs_carol;
SET ROLE regress_qcs_carol;
SELECT qcache_fetch('f7', 'SELECT id, body FROM f_docs ORDER BY id') AS out_of_group;
RESET ROLE;
CREATE SCHEMA ov1;
CREATE SCHEMA ov2;
CREATE FUNCTION ov1.f(int) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'ov1.f(int)'$$;
CREATE FUNCTION ov2.f(int) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'ov2.f(int)'$$;
CREATE FUNCTION ov2.f(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'ov2.f(text)'$$;
SET search_path = ov1, public;
SELECT qcache_fetch(NULL, 'SELECT f($1) AS v', params => ARRAY['5']) AS in_ov1;
SET search_path = ov2, public;
SELECT qcache_fetch(NULL, 'SELECT f($1) AS v', params => ARRAY['5']) AS in_ov2;
PREPARE ov_direct(unknown) AS SELECT f($1) AS v;
EXECUTE ov_direct('5');
DEALLOCATE ov_direct;
RESET search_path;
CREATE TYPE h_mood AS ENUM ('sad', 'ok');
CREATE TABLE h1 (m h_mood);
INSERT INTO h1 VALUES ('sad');
SELECT qcache_fetch('h1', 'SELECT m FROM h1') AS before_rename;
ALTER TYPE h_mood RENAME VALUE 'sad' TO 'unhappy';
SELECT qcache_fetch('h1', 'SELECT m FROM h1') AS after_rename;

-- Clean up.
SET client_min_messages = warning;
DROP TABLE f_docs, h1;
DROP TYPE h_mood;
DROP SCHEMA ov1, ov2 CASCADE;
DROP OPERATOR ### (int, int);
DROP FUNCTION e_secret(int, int), i_wrap(int), i_secret(int);
DROP OWNED BY regress_qcs_grp;
DROP ROLE regress_qcs_grp;
DROP OPERATOR <+> (int, int);
DROP TABLE nums;
DROP SCHEMA hid CASCADE;
DROP FUNCTION owned_by_me(), me(), as_alice(), plus7(int, int);
DROP TABLE secret, owned_rows, tmp, tenant_rows, read_log, colpriv, granted CASCADE;
DROP SEQUENCE read_seq;
DROP SCHEMA sp_a, sp_b, hidden CASCADE;
DROP FUNCTION secret_sql(), secret_srf(), secret_plpgsql(), no_exec(), definer_secret(),
	log_read(), log_read_sql(), make_table(), next_id(), lock_rows(), sec_try(text), ran(int);
SELECT qcache_clear() >= 0 AS cleared;
DROP OWNED BY regress_qcs_alice, regress_qcs_bob, regress_qcs_carol;
DROP ROLE regress_qcs_alice, regress_qcs_bob, regress_qcs_carol;
RESET client_min_messages;
