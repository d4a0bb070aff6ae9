-- bench-modes: prepared
-- UPDATE of one random row of upd_w10000 (10000 rows), qcache_watch on it.
-- First transaction of each client only (:nkeys still holds the harness's -D value, then it is
-- set to 0): client 0 calls bench_upd_populate (bench/qcache/setup.sql), which stores 10000
-- entries tagged table:public.upd_w10000, while the other clients wait 100 ms; so every run, at every
-- client count, starts with them in the cache. upd_plain and every upd_watched_* case have this
-- same first transaction.
\if :nkeys > 0
\if :client_id = 0
SELECT bench_upd_populate('upd_w10000', 10000);
\else
\sleep 100 ms
\endif
\set nkeys 0
\endif
\set id random(1, 10000)
UPDATE upd_w10000 SET v = v + 1 WHERE id = :id;
