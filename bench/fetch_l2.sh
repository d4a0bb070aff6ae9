#!/usr/bin/env bash
# A qcache_fetch hit served by Redis (L2) against one served by shared memory (L1), in the
# same run (issue 9: fetch results through the Redis level).
#
# Starts a redis-server on FL_REDIS_PORT and one PostgreSQL cluster on FL_PORT (initdb under
# $FL_BASE, qcache preloaded, qcache.redis_url pointing at that Redis), both on 127.0.0.1,
# stopped by pid / data directory on every exit path.  Then FL_R rounds, each case for FL_T
# seconds with pgbench -M prepared -c 1 over TCP, as a role with SELECT on the table:
#   l1_hit   qcache_fetch of a 10-row aggregate over a 10,000-row table: L1 hits (shared
#            result, privileges re-checked from the per-backend cache)
#   l2_hit   the same call with qcache.l1_ttl = 0 in the session (PGOPTIONS): nothing is kept
#            in L1, so every call is an L2 hit: the Redis round trip, the x field's checks,
#            the privilege re-check, JSON validation and jsonb parse
#   select1  SELECT 1 (the round-trip floor)
# Figures on stdout: TPS and mean latency of each case (median over rounds), and the ratio
# l2_hit latency / l1_hit latency.
#
# Usage: bash bench/fetch_l2.sh   Knobs: PGBIN [/usr/lib/postgresql/15/bin: a PostgreSQL
#        with qcache installed, e.g. a relocated copy] FL_T [5] FL_R [3]
#        FL_BASE [/tmp/qcache-bench-fetchl2] FL_PORT [25461] FL_REDIS_PORT [26411]
set -Eeuo pipefail
{
: "${PGBIN:=/usr/lib/postgresql/15/bin}" "${FL_T:=5}" "${FL_R:=3}"
: "${FL_BASE:=/tmp/qcache-bench-fetchl2}" "${FL_PORT:=25461}" "${FL_REDIS_PORT:=26411}"
H=127.0.0.1
case "$FL_BASE" in /tmp/?*) ;; *) echo "FL_BASE must be under /tmp" >&2; exit 1;; esac
RUN="runuser -u postgres --"
rpid=
cleanup() {
  [ -f "$FL_BASE/pg/postmaster.pid" ] && $RUN "$PGBIN/pg_ctl" -D "$FL_BASE/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

rm -rf "$FL_BASE"; mkdir -p "$FL_BASE"; chown postgres:postgres "$FL_BASE"
redis-server --port "$FL_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$FL_BASE" --daemonize no >"$FL_BASE/redis.log" 2>&1 &
rpid=$!
for _ in $(seq 100); do redis-cli -p "$FL_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

$RUN "$PGBIN/initdb" -D "$FL_BASE/pg" -A trust >/dev/null
cat >>"$FL_BASE/pg/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $FL_PORT
unix_socket_directories = '$FL_BASE'
shared_preload_libraries = 'qcache'
qcache.memory = 64MB
qcache.redis_url = 'redis://127.0.0.1:$FL_REDIS_PORT'
qcache.redis_timeout = 1s
EOF
$RUN "$PGBIN/pg_ctl" -D "$FL_BASE/pg" -l "$FL_BASE/pg.log" -w start >/dev/null
psql() { $RUN "$PGBIN/psql" -h $H -p "$FL_PORT" -U postgres -d postgres -XAtq "$@"; }
psql <<'EOF'
CREATE EXTENSION qcache;
CREATE ROLE app LOGIN;
SELECT qcache_grant_reader('app');
CREATE TABLE items (id int PRIMARY KEY, category int, price int);
INSERT INTO items SELECT g, g % 10, g % 97 FROM generate_series(1, 10000) g;
GRANT SELECT ON items TO app;
SELECT qcache_watch('items');
EOF
Q="SELECT category, count(*) AS n, sum(price) AS s FROM items GROUP BY category ORDER BY category"
echo "SELECT qcache_fetch(:key, '$Q', 3600);" >"$FL_BASE/fetch.sql"
echo "SELECT 1;" >"$FL_BASE/select1.sql"
chown postgres:postgres "$FL_BASE"/*.sql
# The L1 case's key is computed once and then served from L1.  Each round's L2 case has a
# key of its own, computed by a session with qcache.l1_ttl = 0, so that no L1 ever holds it.
warm() {  # key, PGOPTIONS
  $RUN env PGOPTIONS="$2" "$PGBIN/psql" -h $H -p "$FL_PORT" -U app -d postgres -XAtq \
    -c "SELECT qcache_fetch('$1', '$Q', 3600)" >/dev/null
}
warm agg ""

bench() {  # key, script, extra PGOPTIONS -> "tps latency_ms"
  local out
  out=$($RUN env PGOPTIONS="$3" "$PGBIN/pgbench" -h $H -p "$FL_PORT" -U app -n -M prepared \
        -c 1 -T "$FL_T" -D key="$1" -f "$2" postgres 2>&1)
  printf '%s %s\n' "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")" \
    "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
}
declare -A tps lat
for r in $(seq "$FL_R"); do
  for c in l1_hit l2_hit select1; do
    case $c in
      l1_hit) res=$(bench agg "$FL_BASE/fetch.sql" "") ;;
      l2_hit) warm "agg$r" "-c qcache.l1_ttl=0"
              res=$(bench "agg$r" "$FL_BASE/fetch.sql" "-c qcache.l1_ttl=0") ;;
      select1) res=$(bench x "$FL_BASE/select1.sql" "") ;;
    esac
    tps[$c]+="${res% *} "; lat[$c]+="${res#* } "
  done
done
med() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stats=$(psql -c "SELECT hits, l2_hits, l2_misses FROM qcache_stats")
printf 'case     tps(median)  latency_ms(median)  rounds=%s T=%ss c=1 -M prepared\n' "$FL_R" "$FL_T"
for c in l1_hit l2_hit select1; do
  printf '%-8s %11s  %18s\n' "$c" "$(med <<<"${tps[$c]}")" "$(med <<<"${lat[$c]}")"
done
l1=$(med <<<"${lat[l1_hit]}"); l2=$(med <<<"${lat[l2_hit]}")
printf 'l2_hit / l1_hit latency: %s\n' "$(awk -v a="$l2" -v b="$l1" 'BEGIN {printf "%.2f", a / b}')"
printf 'qcache_stats hits|l2_hits|l2_misses: %s\n' "$stats"
exit 0
}
