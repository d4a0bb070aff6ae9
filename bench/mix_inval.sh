#!/usr/bin/env bash
# 90% gets + 10% invalidations against pure gets (issue 12): the TPS of
# bench/qcache/scripts/qcache_mixed_inval.sql over that of qcache_get.sql, at each of
# MIX_CLIENTS, measured MIX_R times with the two a few seconds apart (the ratio of each
# round, then the median): the same scripts as bench/run.sh's cases qcache_get and
# qcache_mixed_inval, without the peers that run.sh preloads, so that it runs against any
# installed qcache ($PGBIN, e.g. a relocated copy).
#
# A throw-away cluster (initdb as user postgres under $MIX_BASE, 127.0.0.1 only, port
# $MIX_PORT, stopped with pg_ctl by its data directory on every exit path) with qcache
# preloaded (qcache.memory 64MB); MIX_KEYS keys 'k'||i of about 1 kB in an unlogged table
# kv_unlogged (the "database") and in the cache; a get that misses refills its key from the
# table (bench_refill, as in bench/qcache/setup.sql).
#
# Usage: bash bench/mix_inval.sh OUT_DIR    (as root; writes OUT_DIR/mix_inval.tsv)
# Knobs: MIX_CLIENTS ["8 32"] MIX_T [5] (seconds per point) MIX_R [3] MIX_KEYS [10000]
#   MIX_BASE [/tmp/qcache-bench-mix] MIX_PORT [25449]
set -Eeuo pipefail
{

OUT=${1:?usage: mix_inval.sh OUT_DIR}
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${MIX_CLIENTS:=8 32}" "${MIX_T:=5}" "${MIX_R:=3}" "${MIX_KEYS:=10000}"
: "${MIX_BASE:=/tmp/qcache-bench-mix}" "${MIX_PORT:=25449}"
H=127.0.0.1
HERE=$(cd "$(dirname "$0")" && pwd)

log() { printf '[%(%H:%M:%S)T] mix_inval: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/scratch_lib.sh"
bench_lock

case "$MIX_BASE" in /tmp/?*) ;; *) die "MIX_BASE must be a scratch dir under /tmp";; esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TSV="$OUT/mix_inval.tsv"
MLOG="$OUT/mix_inval.log"
PGDATA_DIR="$MIX_BASE/pgdata"
PGLOG="$MIX_BASE/postgres.log"

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  pg_stop
  rm -rf "$MIX_BASE"
  log "cluster stopped (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scratch_init "$MIX_BASE" "$MIX_PORT" "$MLOG" 50 64MB
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
qcache.memory = '64MB'
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 start >>"$MLOG" 2>&1 \
  || die "the cluster did not start (see $PGLOG)"
runuser -u postgres -- "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$H" -p "$MIX_PORT" -d postgres \
  >>"$MLOG" 2>&1 <<SQL || die "setup failed (see $MLOG)"
CREATE EXTENSION qcache;
CREATE UNLOGGED TABLE kv_unlogged (key text PRIMARY KEY, value jsonb NOT NULL);
INSERT INTO kv_unlogged
  SELECT 'k' || i, jsonb_build_object('id', i, 'pad', repeat(md5(i::text), 30))
  FROM generate_series(1, $MIX_KEYS) i;
CREATE FUNCTION bench_refill(k text) RETURNS jsonb LANGUAGE plpgsql AS \$\$
DECLARE v jsonb;
BEGIN
  SELECT value INTO v FROM kv_unlogged WHERE key = k;
  PERFORM qcache_set(k, v, 0);
  RETURN v;
END \$\$;
SELECT count(*) FILTER (WHERE qcache_set(key, value, 0)) FROM kv_unlogged;
SQL

# point SCRIPT CLIENTS: TPS of one pgbench point
point() {
  local out
  out=$(runuser -u postgres -- "$PGBIN/pgbench" -n -M prepared -c "$2" -j "$2" -T "$MIX_T" \
          -D nkeys="$MIX_KEYS" -f "$HERE/qcache/scripts/$1.sql" -h "$H" -p "$MIX_PORT" postgres 2>>"$MLOG") \
    || die "pgbench $1 -c $2 failed"
  echo "$out" >>"$MLOG"
  echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

printf 'round\tclients\tget_tps\tmixed_inval_tps\tratio\n' >"$TSV"
for r in $(seq "$MIX_R"); do
  for c in $MIX_CLIENTS; do
    g=$(point qcache_get "$c")
    m=$(point qcache_mixed_inval "$c")
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$c" "$g" "$m" \
      "$(awk -v a="$m" -v b="$g" 'BEGIN {printf "%.3f", a / b}')" >>"$TSV"
    log "round $r, $c clients: gets $g TPS, 90/10 mix $m TPS"
  done
done
/usr/bin/python3 - "$TSV" <<'PY'
import sys, csv, statistics
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
for c in sorted({int(r['clients']) for r in rows}):
    rs = [float(r['ratio']) for r in rows if int(r['clients']) == c]
    print(f"clients {c}: mix / gets median {statistics.median(rs):.2f} (rounds: {', '.join(f'{x:.2f}' for x in rs)})")
PY
exit
}
