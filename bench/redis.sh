#!/usr/bin/env bash
# The Redis second level (issue 4): L2-hit latency, qcache_get with Redis down, and
# cross-node invalidation latency.
#
# Starts its own servers, all on 127.0.0.1 and stopped (by pid or data directory) on every
# exit path: a redis-server on RB_REDIS_PORT, and two PostgreSQL clusters A and B (initdb as
# user postgres under $RB_BASE) with qcache preloaded and qcache.redis_url pointing at it.
# Then, RB_R times, each case for RB_T seconds with pgbench -M prepared over TCP:
#   select1      SELECT 1 on A, -c 1 and -c 8 (the round-trip floor)
#   l2_hit       qcache_get of a ~1 KB value on A with qcache.l1_ttl = 0 in the session
#                (PGOPTIONS), so every call is an L1 miss served by Redis, -c 1 and -c 8
#   redis_get    redis-benchmark GET of a value of the same JSON length, -c 1
#   get_nourl    qcache_get hits (L1) on A with qcache.redis_url = '', -c 1 and -c 8
#   get_down     the same with qcache.redis_url pointing at a port where nothing listens
#                (breaker open), -c 1 and -c 8
#   set_tN       qcache_set of a ~1 KB value with N = 1, 4 and 32 tags (each tag shared by
#                1% of the keys), -c 1: what keeping values deletable for direct readers (the
#                per-tag index in Redis) costs a set
# and once: 1000 key invalidations and 1000 tag invalidations made on B (through dblink from
# A), each timed on A from the start of the call on B until the entry has left A's L1.
#
# Figures (RB_OUT/redis.md, redis.tsv): l2_hit latency / (redis_get latency + select1
# latency), target <= 1.5; get_down / get_nourl TPS, target >= 0.9; invalidation p50/p99.
#
# Usage: bash bench/redis.sh OUT_DIR   (as root)
# Knobs: RB_T [5] RB_R [3] RB_BASE [/tmp/qcache-bench-redis] RB_PORT_A [25446]
#        RB_PORT_B [25447] RB_REDIS_PORT [26391] RB_DEAD_PORT [26399] RB_INVALS [1000]
#        RB_BUILD [none]: a qcache source tree to build and install first, under the lock
#        (so the run measures that build; e.g. an export of an older commit for a before/after)
set -Eeuo pipefail
# The whole script is one compound command, read before it runs: editing this file while a run
# is in progress cannot change what that run executes.
{

OUT=${1:?usage: redis.sh OUT_DIR}
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${RB_T:=5}" "${RB_R:=3}" "${RB_BASE:=/tmp/qcache-bench-redis}" "${RB_PORT_A:=25446}"
: "${RB_PORT_B:=25447}" "${RB_REDIS_PORT:=26391}" "${RB_DEAD_PORT:=26399}" "${RB_INVALS:=1000}"
H=127.0.0.1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[%(%H:%M:%S)T] redis: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/scratch_lib.sh"
bench_lock

case "$RB_BASE" in /tmp/?*) ;; *) die "RB_BASE must be under /tmp";; esac

if [ -n "${RB_BUILD:-}" ]; then
  bdir=$(mktemp -d /tmp/qcache-rb-build.XXXXXX)
  tar -C "$RB_BUILD" --exclude=.git --exclude='*.o' --exclude='*.so' -cf - . | tar -C "$bdir" -xf -
  { make -C "$bdir" -s PG_CONFIG="$PGBIN/pg_config" && make -C "$bdir" -s PG_CONFIG="$PGBIN/pg_config" install; } \
    >/dev/null 2>&1 || { rm -rf "$bdir"; die "building $RB_BUILD failed"; }
  rm -rf "$bdir"
  log "built and installed qcache from $RB_BUILD"
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TSV="$OUT/redis.tsv"
RLOG="$OUT/redis.log"
: >"$RLOG"

REDIS_PID=""
cleanup() {
  for n in a b; do
    if [ -f "$RB_BASE/$n/postmaster.pid" ]; then
      runuser -u postgres -- "$PGBIN/pg_ctl" -D "$RB_BASE/$n" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
  done
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

for p in "$RB_PORT_A" "$RB_PORT_B" "$RB_REDIS_PORT" "$RB_DEAD_PORT"; do
  ! ss -ltn "( sport = :$p )" | grep -q LISTEN || die "port $p is in use"
done

rm -rf "$RB_BASE"; mkdir -p "$RB_BASE"; chown postgres:postgres "$RB_BASE"
runuser -u postgres -- redis-server --port "$RB_REDIS_PORT" --bind $H --save '' --appendonly no \
  --dir "$RB_BASE" --logfile "$RB_BASE/redis.log" --daemonize no >>"$RLOG" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -h $H -p "$RB_REDIS_PORT" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done

URL="redis://$H:$RB_REDIS_PORT"
for n in a b; do
  port=$([ $n = a ] && echo "$RB_PORT_A" || echo "$RB_PORT_B")
  runuser -u postgres -- "$PGBIN/initdb" -D "$RB_BASE/$n" -A trust -U postgres >/dev/null
  cat >>"$RB_BASE/$n/postgresql.conf" <<EOF
listen_addresses = '$H'
port = $port
unix_socket_directories = '$RB_BASE'
shared_preload_libraries = 'qcache'
qcache.memory = 64MB
qcache.redis_url = '$URL'
qcache.l1_ttl = 3600
max_connections = 50
fsync = off
EOF
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$RB_BASE/$n" -l "$RB_BASE/$n.log" -w start >/dev/null
  psql -X -q -h $H -p "$port" -U postgres -d postgres -c 'CREATE EXTENSION qcache' >/dev/null
done
PA=(psql -X -qAt -h $H -p "$RB_PORT_A" -U postgres -d postgres)
psql -X -q -h $H -p "$RB_PORT_A" -U postgres -d postgres -c 'CREATE EXTENSION dblink' >/dev/null

# wait until A writes through to Redis
for _ in $(seq 200); do
  "${PA[@]}" -c "SELECT qcache_set('probe', '1', 60)" >/dev/null
  [ "$(redis-cli -h $H -p "$RB_REDIS_PORT" EXISTS qcache:postgres:probe)" = 1 ] && break
  sleep 0.05
done
[ "$(redis-cli -h $H -p "$RB_REDIS_PORT" EXISTS qcache:postgres:probe)" = 1 ] || die "qcache never reached Redis"

FILL="SELECT count(qcache_set('k:' || i, jsonb_build_object('id', i, 'pad', repeat('x', 975)), 0)) FROM generate_series(1, 1000) i"
"${PA[@]}" -c "$FILL" >/dev/null
VLEN=$(redis-cli -h $H -p "$RB_REDIS_PORT" STRLEN qcache:postgres:k:500)
log "1000 values of $VLEN bytes of JSON in Redis and in A's L1"

# What parsing one value's JSON into jsonb costs inside a backend (part of every L2 hit): the
# median of 3 loops of 20000 parses, minus the same loop without the parse, in µs per parse.
"${PA[@]}" >/dev/null <<'EOF'
CREATE FUNCTION bench_parse_us(n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j text := qcache_get('k:500')::text; t0 timestamptz; a float8; b float8; r float8[] := '{}';
BEGIN
  FOR rep IN 1..3 LOOP
    t0 := clock_timestamp();
    PERFORM count((j || repeat(' ', i % 2))::jsonb) FROM generate_series(1, n) i;
    a := extract(epoch FROM clock_timestamp() - t0);
    t0 := clock_timestamp();
    PERFORM count(j || repeat(' ', i % 2)) FROM generate_series(1, n) i;
    b := extract(epoch FROM clock_timestamp() - t0);
    r := r || ((a - b) * 1e6 / n);
  END LOOP;
  RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(r) x);
END $$;
EOF
PARSE_US=$("${PA[@]}" -c "SELECT round(bench_parse_us(20000)::numeric, 2)")
echo "$PARSE_US" >"$OUT/redis_parse_us.txt"
log "parsing one ${VLEN}-byte value into jsonb: $PARSE_US µs"

S="$RB_BASE/scripts"; mkdir -p "$S"
echo 'SELECT 1;' >"$S/select1.sql"
printf '%s\n' '\set id random(1, 1000)' "SELECT qcache_get('k:' || :id);" >"$S/get.sql"
for nt in 1 4 32; do
  printf '%s\n' '\set id random(1, 100000)' \
    "SELECT qcache_set('st:' || :id::int, jsonb_build_object('id', :id::int, 'pad', repeat('x', 975)), 300,
       (SELECT array_agg('g' || j || ':' || (:id::int % 100)) FROM generate_series(1, $nt) j));" >"$S/set_t$nt.sql"
done

# pgbench CASE CLIENTS SCRIPT [PGOPTIONS]: appends "rep case clients tps lat_ms" to TSV
bench() {
  local rep=$1 name=$2 c=$3 script=$4 opts=${5:-} out
  out=$(PGOPTIONS="$opts" "$PGBIN/pgbench" -n -M prepared -T "$RB_T" -c "$c" -j "$(( c < 2 ? c : 2 ))" \
          -h $H -p "$RB_PORT_A" -U postgres -f "$script" postgres 2>&1) || { echo "$out" >>"$RLOG"; die "pgbench $name failed"; }
  echo "== rep $rep $name c=$c PGOPTIONS=$opts" >>"$RLOG"; echo "$out" >>"$RLOG"
  local tps lat
  BENCH_TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$name" "$c" "$tps" "$lat" >>"$TSV"
}

reload_url() {
  runuser -u postgres -- "$PGBIN/psql" -X -q -h $H -p "$RB_PORT_A" -U postgres -d postgres \
    -c "ALTER SYSTEM SET qcache.redis_url = '$1'" -c 'SELECT pg_reload_conf()' >/dev/null
  sleep 0.5
  "${PA[@]}" -c "$FILL" >/dev/null
}

printf 'rep\tcase\tclients\ttps\tlat_ms\n' >"$TSV"
printf 'rep\tl2_hit_transactions\tl1_hits\tl2_hits\n' >"$OUT/redis_checks.tsv"
for rep in $(seq 1 "$RB_R"); do
  log "rep $rep/$RB_R"
  reload_url "$URL"
  for _ in $(seq 100); do
    [ "$("${PA[@]}" -c "SELECT qcache_set('probe2', '1', 60)")" = t ] && \
      [ "$(redis-cli -h $H -p "$RB_REDIS_PORT" EXISTS qcache:postgres:probe2)" = 1 ] && break
    sleep 0.05
  done
  for nt in 1 4 32; do bench "$rep" "set_t$nt" 1 "$S/set_t$nt.sql"; done
  # the values in Redis only: with qcache.l1_ttl = 0 a set leaves nothing in L1, so every get
  # of the l2_hit case is an L1 miss served by Redis
  "${PA[@]}" -c "SET qcache.l1_ttl = 0" -c "$FILL" >/dev/null
  [ "$("${PA[@]}" -c "SELECT count(*) FROM qcache_entries WHERE key LIKE 'k:%'")" = 0 ] \
    || die "A's L1 still holds values before the l2_hit case"
  # the baselines right before the case and right after it (redis_get): this machine's speed
  # drifts over tens of seconds, and the ratio is only as good as the closeness of its terms
  bench "$rep" select1 8 "$S/select1.sql"; bench "$rep" select1 1 "$S/select1.sql"
  read -r h0 l0 < <("${PA[@]}" -F' ' -c "SELECT hits, l2_hits FROM qcache_stats")
  BENCH_TX=0
  bench "$rep" l2_hit 1 "$S/get.sql" "-c qcache.l1_ttl=0"; tx=$BENCH_TX
  bench "$rep" l2_hit 8 "$S/get.sql" "-c qcache.l1_ttl=0"; tx=$((tx + BENCH_TX))
  read -r h1 l1 < <("${PA[@]}" -F' ' -c "SELECT hits, l2_hits FROM qcache_stats")
  # what the l2_hit gets were: qcache_stats' L1 hits and L2 hits during the case, per transaction
  printf '%s\t%s\t%s\t%s\n' "$rep" "$tx" "$((h1 - h0))" "$((l1 - l0))" >>"$OUT/redis_checks.tsv"
  rb=$(redis-benchmark -h $H -p "$RB_REDIS_PORT" -c 1 -n $(( RB_T * 15000 )) -d "$VLEN" -r 1000 -t set,get --csv 2>>"$RLOG")
  echo "== rep $rep redis-benchmark" >>"$RLOG"; echo "$rb" >>"$RLOG"
  rbline=$(grep '^"GET"' <<<"$rb" | tr -d '"')
  printf '%s\tredis_get\t1\t%s\t%s\n' "$rep" "$(cut -d, -f2 <<<"$rbline")" "$(cut -d, -f3 <<<"$rbline")" >>"$TSV"
  reload_url ""
  bench "$rep" get_nourl 1 "$S/get.sql"; bench "$rep" get_nourl 8 "$S/get.sql"
  reload_url "redis://$H:$RB_DEAD_PORT"
  bench "$rep" get_down 1 "$S/get.sql"; bench "$rep" get_down 8 "$S/get.sql"
done
reload_url "$URL"

log "cross-node invalidations ($RB_INVALS of each kind)"
for _ in $(seq 100); do
  [ "$(redis-cli -h $H -p "$RB_REDIS_PORT" PUBSUB NUMSUB qcache#inv | tail -1)" = 2 ] && break; sleep 0.05
done
"${PA[@]}" >>"$RLOG" <<EOF
CREATE TABLE inv_lat (kind text, ms float8);
SELECT dblink_connect('b', 'host=$H port=$RB_PORT_B dbname=postgres user=postgres');
DO \$\$
DECLARE t0 timestamptz; k text;
BEGIN
  FOR i IN 1..$RB_INVALS LOOP
    FOREACH k IN ARRAY ARRAY['key', 'tag'] LOOP
      PERFORM qcache_set('inv:' || i, '1', 300, ARRAY['t:' || i]);
      t0 := clock_timestamp();
      IF k = 'key' THEN
        PERFORM * FROM dblink('b', format('SELECT qcache_invalidate(%L)', 'inv:' || i)) AS r(x boolean);
      ELSE
        PERFORM * FROM dblink('b', format('SELECT qcache_invalidate_tag(%L)', 't:' || i)) AS r(x bigint);
      END IF;
      -- an L1 hit until the message has removed it; then an L1 miss, and Redis has it no more
      WHILE qcache_get('inv:' || i) IS NOT NULL LOOP
        PERFORM pg_sleep(0.0001);
        IF clock_timestamp() - t0 > interval '5 s' THEN RAISE EXCEPTION 'invalidation never arrived'; END IF;
      END LOOP;
      INSERT INTO inv_lat VALUES (k, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
  END LOOP;
END \$\$;
EOF
"${PA[@]}" -F $'\t' -c "SELECT 'inval_' || kind, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
  percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) FROM inv_lat GROUP BY kind ORDER BY kind" >"$OUT/redis_inval.tsv"
cp "$RB_BASE/a.log" "$OUT/redis-postgres-a.log" 2>/dev/null || true

python3 "$HERE/redis_report.py" "$TSV" "$OUT/redis_inval.tsv" "$VLEN" "$OUT/redis_checks.tsv" >"$OUT/redis.md"
cat "$OUT/redis.md" >&2

exit
}
