-- bench-modes: prepared
-- UPDATE of one random row of upd_plain (10000 rows, no qcache_watch on it): the baseline of
-- the upd_watched_* cases, with the same first transaction (:nkeys still holds the harness's
-- -D value, then it is set to 0): client 0 calls bench_upd_populate (bench/qcache/setup.sql),
-- here storing nothing, while the other clients wait 100 ms.
\if :nkeys > 0
\if :client_id = 0
SELECT bench_upd_populate('upd_plain', 0);
\else
\sleep 100 ms
\endif
\set nkeys 0
\endif
\set id random(1, 10000)
UPDATE upd_plain SET v = v + 1 WHERE id = :id;
