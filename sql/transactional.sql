--
-- transactional: what the invalidation triggers do inside the writing
-- transaction, in one session (the isolation specs show the other
-- sessions).  The tags take effect at COMMIT; until then the writer misses
-- on them (read your writes) and stores nothing at all (qcache_set returns
-- false and counts sets_rejected, qcache_fetch returns its rows without
-- caching them).  A rollback invalidates nothing; a subtransaction rolled
-- back leaves its tags pending (extra misses, never wrong values).
-- PREPARE TRANSACTION keeps the tags in flight until COMMIT PREPARED.  Explicit
-- invalidations act at once, in or out of a transaction.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
SELECT qcache_clear() >= 0 AS cleared;
\set SHOW_CONTEXT never

CREATE TABLE tx_items (id int PRIMARY KEY, price int);
INSERT INTO tx_items VALUES (1, 10), (2, 20);
CREATE TABLE tx_other (id int);
SELECT qcache_watch('tx_items', 'item:{id}');
RESET client_min_messages;

-- prime(): store the entries the checks look at, outside any write.
--   item:1, item:2   tagged item:1, item:2
--   tx:all           qcache_fetch over tx_items (tag table:public.tx_items)
--   tx:unrelated     tagged unrelated
CREATE FUNCTION pg_temp.prime() RETURNS boolean LANGUAGE sql AS $$
	SELECT qcache_clear() >= 0
	   AND qcache_set('item:1', to_jsonb((SELECT price FROM tx_items WHERE id = 1)), 0, ARRAY['item:1'])
	   AND qcache_set('item:2', to_jsonb((SELECT price FROM tx_items WHERE id = 2)), 0, ARRAY['item:2'])
	   AND qcache_fetch('tx:all', 'SELECT id, price FROM tx_items ORDER BY id', 0) IS NOT NULL
	   AND qcache_set('tx:unrelated', '"u"', 0, ARRAY['unrelated'])
$$;
-- seen(): what each key serves now (tx:all: from the cache, without
-- running the query).
CREATE FUNCTION pg_temp.seen() RETURNS TABLE (item1 jsonb, item2 jsonb, "all" jsonb,
                                             unrelated jsonb)
LANGUAGE sql AS $$
	SELECT qcache_get('item:1'), qcache_get('item:2'),
	       qcache_fetch_cached('tx:all', 'SELECT id, price FROM tx_items ORDER BY id'),
	       qcache_get('tx:unrelated')
$$;

--
-- Read your writes, and a writer stores nothing until it ends.
--
SELECT pg_temp.prime() AS primed;
SELECT * FROM pg_temp.seen();
SELECT qcache_reset_stats();
BEGIN;
UPDATE tx_items SET price = 11 WHERE id = 1;
-- item:1 and the table tag are pending: the writer misses on them.
SELECT * FROM pg_temp.seen();
-- qcache_fetch runs the query (seeing the write) and caches nothing.
SELECT qcache_fetch('tx:all', 'SELECT id, price FROM tx_items ORDER BY id', 0);
SELECT qcache_fetch('tx:new', 'SELECT 1 AS one', 0);
-- qcache_set refuses, under the invalidated tags and under any other.
SELECT qcache_set('item:1', '11', 0, ARRAY['item:1']) AS set_item1,
       qcache_set('tx:new2', '1', 0, ARRAY['unrelated']) AS set_other_tag,
       qcache_set('tx:new3', '1', 0) AS set_untagged;
SELECT sets, sets_rejected FROM qcache_stats;
COMMIT;
-- After the commit: the invalidated tags miss, the others still hit, and
-- nothing the writer tried to store is there.
SELECT * FROM pg_temp.seen();
SELECT qcache_fetch_cached('tx:new', 'SELECT 1 AS one') AS new,
       qcache_get('tx:new2') AS new2, qcache_get('tx:new3') AS new3;
-- A new transaction stores again, and sees the committed value.
SELECT qcache_fetch('tx:all', 'SELECT id, price FROM tx_items ORDER BY id', 0);
SELECT qcache_set('item:1', '11', 0, ARRAY['item:1']) AS set_after_commit;
SELECT * FROM pg_temp.seen();

-- A write to a table without triggers changes nothing of this.
SELECT pg_temp.prime() AS primed;
BEGIN;
INSERT INTO tx_other VALUES (1);
SELECT * FROM pg_temp.seen();
SELECT qcache_set('tx:new', '1', 0, ARRAY['item:1']) AS set_unwatched;
COMMIT;
SELECT * FROM pg_temp.seen();
SELECT qcache_get('tx:new') AS new;

-- Writes in functions: the same.
SELECT pg_temp.prime() AS primed;
CREATE FUNCTION pg_temp.write_then_set() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	UPDATE tx_items SET price = price WHERE id = 2;
	RETURN qcache_set('tx:in-function', '1', 0);
END
$$;
SELECT pg_temp.write_then_set() AS set_in_function;
SELECT * FROM pg_temp.seen();
SELECT qcache_get('tx:in-function') AS in_function;

--
-- A value computed by the writing statement itself (RETURNING, or a
-- data-modifying WITH) reflects a write that is not committed: it must
-- not be served, and never after a rollback.
--
SELECT pg_temp.prime() AS primed;
BEGIN;
UPDATE tx_items SET price = 99 WHERE id = 1
	RETURNING qcache_set('item:1', to_jsonb(price), 0, ARRAY['item:1']) IS NOT NULL AS called;
ROLLBACK;
BEGIN;
WITH u AS (UPDATE tx_items SET price = 98 WHERE id = 2 RETURNING price)
SELECT qcache_set('item:2', to_jsonb(price), 0, ARRAY['item:2']) IS NOT NULL AS called FROM u;
ROLLBACK;
SELECT price FROM tx_items ORDER BY id;
SELECT qcache_get('item:1') IS DISTINCT FROM '99' AS item1_not_rolled_back_value,
       qcache_get('item:2') IS DISTINCT FROM '98' AS item2_not_rolled_back_value;

--
-- Rollback: nothing is invalidated.
--
SELECT pg_temp.prime() AS primed;
BEGIN;
UPDATE tx_items SET price = 12 WHERE id = 1;
DELETE FROM tx_items WHERE id = 2;
SELECT * FROM pg_temp.seen();
ROLLBACK;
SELECT * FROM pg_temp.seen();
-- Read your writes ends with the transaction: it stores again.
SELECT qcache_set('tx:after-rollback', '1', 0, ARRAY['item:1']) AS set_after_rollback;
-- An error rolls back the same way.
SELECT pg_temp.prime() AS primed;
BEGIN;
UPDATE tx_items SET price = 12 WHERE id = 1;
SELECT 1 / 0;
ROLLBACK;
SELECT * FROM pg_temp.seen();
-- A set refused inside the writer removes the key's old entry at once (as
-- every set that does not take does): a miss, not a wrong value.
SELECT pg_temp.prime() AS primed;
BEGIN;
UPDATE tx_items SET price = 12 WHERE id = 1;
SELECT qcache_set('item:2', '21', 0, ARRAY['item:2']) AS refused;
ROLLBACK;
SELECT * FROM pg_temp.seen();

--
-- Savepoints.
--
-- ROLLBACK TO: the write is undone, but its tags stay pending; at commit
-- they are invalidated anyway (extra misses).
SELECT pg_temp.prime() AS primed;
BEGIN;
SAVEPOINT s1;
UPDATE tx_items SET price = 13 WHERE id = 1;
ROLLBACK TO SAVEPOINT s1;
SELECT * FROM pg_temp.seen();
SELECT qcache_set('tx:in-savepoint-tx', '1', 0) AS refused;
COMMIT;
SELECT price FROM tx_items WHERE id = 1;
SELECT * FROM pg_temp.seen();
-- RELEASE: the tags are the transaction's.
SELECT pg_temp.prime() AS primed;
BEGIN;
SAVEPOINT s1;
UPDATE tx_items SET price = 14 WHERE id = 2;
RELEASE SAVEPOINT s1;
SELECT * FROM pg_temp.seen();
COMMIT;
SELECT * FROM pg_temp.seen();
-- A subtransaction rolled back, then the top transaction rolled back:
-- nothing is invalidated.
SELECT pg_temp.prime() AS primed;
BEGIN;
SAVEPOINT s1;
UPDATE tx_items SET price = 15 WHERE id = 1;
ROLLBACK TO SAVEPOINT s1;
ROLLBACK;
SELECT * FROM pg_temp.seen();
-- A PL/pgSQL exception block is a subtransaction too.
SELECT pg_temp.prime() AS primed;
DO $$
BEGIN
	UPDATE tx_items SET price = 16 WHERE id = 2;
	RAISE EXCEPTION 'undo';
EXCEPTION WHEN OTHERS THEN
	NULL;
END
$$;
SELECT price FROM tx_items WHERE id = 2;
SELECT * FROM pg_temp.seen();

--
-- TRUNCATE with column templates invalidates the template's family (every
-- trunc:... tag) and the table's tags at commit: inside the transaction
-- those entries miss, unrelated ones do not.
--
CREATE TABLE tx_trunc (id int);
SET client_min_messages = warning;
SELECT qcache_watch('tx_trunc', 'trunc:{id}');
RESET client_min_messages;
-- (after the CREATE TABLE, which invalidates every qcache_fetch entry:
-- a new table may change what a name resolves to)
SELECT pg_temp.prime() AS primed;
BEGIN;
TRUNCATE tx_trunc;
SELECT * FROM pg_temp.seen();
ROLLBACK;
SELECT * FROM pg_temp.seen();

--
-- PREPARE TRANSACTION after an invalidation works: from PREPARE until the
-- prepared transaction is finished, its tags are in flight (entries with
-- them miss, and nothing is stored under them); COMMIT PREPARED stamps
-- them, in whatever session it runs (invalidate.c).  ROLLBACK PREPARED
-- only costs misses.  (pg_regress's temporary instance allows prepared
-- transactions.)
--
SELECT pg_temp.prime() AS primed;
BEGIN;
UPDATE tx_items SET price = 17 WHERE id = 1;
PREPARE TRANSACTION 'qcache_regress';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT price FROM tx_items WHERE id = 1;
-- prepared: item:1 and the table's entries miss, item:2 and others do not
SELECT * FROM pg_temp.seen();
SELECT qcache_set('item:1', '11', 0, ARRAY['item:1']) AS set_while_prepared;
COMMIT PREPARED 'qcache_regress';
SELECT price FROM tx_items WHERE id = 1;
SELECT * FROM pg_temp.seen();
SELECT qcache_fetch('tx:all', 'SELECT id, price FROM tx_items ORDER BY id', 0);
-- A write rolled back to a savepoint leaves its tags pending; rolled back.
SELECT pg_temp.prime() AS primed;
BEGIN;
SAVEPOINT s1;
UPDATE tx_items SET price = 18 WHERE id = 1;
ROLLBACK TO SAVEPOINT s1;
PREPARE TRANSACTION 'qcache_regress';
SELECT * FROM pg_temp.seen();
ROLLBACK PREPARED 'qcache_regress';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT qcache_set('item:1', '17', 0, ARRAY['item:1']) AS set_after_rollback;
SELECT qcache_get('item:1') AS item1;
-- Without invalidations a transaction prepares and commits as usual.
SELECT pg_temp.prime() AS primed;
BEGIN;
INSERT INTO tx_other VALUES (2);
PREPARE TRANSACTION 'qcache_regress';
SELECT gid FROM pg_prepared_xacts;
COMMIT PREPARED 'qcache_regress';
SELECT * FROM pg_temp.seen();

--
-- Explicit invalidations act at once, in a transaction or not, and are
-- not undone by a rollback.  The invalidating transaction may store again
-- under the tag at once.
--
SELECT pg_temp.prime() AS primed;
BEGIN;
SELECT qcache_invalidate_tag('item:2');
SELECT * FROM pg_temp.seen();
SELECT qcache_set('item:2', '"again"', 0, ARRAY['item:2']) AS set_after_explicit;
SELECT * FROM pg_temp.seen();
ROLLBACK;
SELECT * FROM pg_temp.seen();
BEGIN;
SELECT qcache_clear() > 0 AS cleared;
SELECT qcache_set('tx:after-clear', '1', 0) AS set_after_clear;
ROLLBACK;
SELECT * FROM pg_temp.seen();
SELECT qcache_get('tx:after-clear') AS after_clear;

DROP TABLE tx_items, tx_other, tx_trunc;
SELECT qcache_clear() >= 0 AS cleared;
