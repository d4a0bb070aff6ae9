#!/usr/bin/env bash
# qcache benchmark suite: the one command.
#
#   bash bench/run.sh            full run (as root, Debian 12): under 10 min on 2 cores, R=3 samples
#   bash bench/run.sh --quick    smoke run: one sample, fewer client counts and sizes, under 2 min
#
# Steps, each stopping every server it started, also on failure:
#   1. apt-get installs what is missing (PostgreSQL 15 + server dev, pgmemcache, memcached,
#      pgpool2, redis, gcc, make, python3, gnuplot-nox);
#   2. builds qcache from a copy of this working tree and installs it (make && make install);
#   3. runs the peers harness (bench/peers/run.sh) R times, each run one sample: its own
#      PostgreSQL with qcache preloaded + memcached + redis + pgpool on 127.0.0.1, non-default
#      ports; the peer baselines plus the qcache cases of bench/qcache/ (every
#      bench/qcache/scripts/<name>.sql is pgbench case <name>, and also <name>_simple, run with
#      -M simple, if its first line is "-- bench-modes: prepared simple"; bench/qcache/qcache.loops
#      holds the in-SQL loops), at CLIENTS; the get cases and the mixed workloads also at
#      CURVE_CLIENTS (TPS-against-clients curves), and the size_* cases at -c 1 for each of SIZES
#      (latency-against-size curve);
#   4. the memory step (bench/memory.sh): its own cluster and redis-server; entries of each size of
#      MEM_ENTRY_BYTES until the first eviction, and the same entries in Redis;
#   4b. the Redis step (bench/redis.sh): its own redis-server and two clusters: L2-hit latency
#      against a raw Redis GET + SELECT 1, qcache_get with Redis down, cross-node invalidation
#      latency (RB_* knobs);
#   4c. the index step (bench/index_curve.sh): one cluster per size of IX_SIZES; the cost of a
#      tag invalidation (a tag on 10 entries, on none), a prefix invalidation, a set into a full
#      hot cache, a set with room and a get, at each size (SPEC 10); its table is appended to
#      the report;
#   5. bench/report.py writes bench/results/<UTC date>.md (--quick: <UTC date>-quick.md) with
#      the targets, met or missed and why, the cases side by side as ratios to their baselines,
#      and the charts (gnuplot PNGs, with their data TSVs) in bench/results/charts/.
# The wall time is printed at the end and written into the report.
# Raw data (every pgbench output, commands, configs, per-run TSVs) stays in
# bench/results/raw/<UTC date-time>/, which the report links to.
#
# Options: --quick  --all (every case the peers harness has, too)
#          --no-apt (do not install packages)  --no-build (use the installed qcache)
#          --no-memory (skip step 4)  --no-redis (skip step 4b)  --no-index (skip step 4c)
#          -h|--help
# Knobs (env, defaults in brackets, then the --quick value):
#   T [1] seconds per pgbench run at CLIENTS     SHORT_T [1] seconds per run of the other curve points
#   R [3; 1] harness runs (samples)              CLIENTS ["1 8"; "1"]
#   CURVE_CLIENTS ["2 4 16 32"; "8"]          SIZES ["100 1000 10000 100000 1000000"; "100 10000 1000000"]
#   REDIS_N [30000; 20000] redis-benchmark requests per point (fewer for values over 10 KB)
#   JOBS [2]   LOOP_N [100000]   LOOP_REPS [3]   QUIET_BUDGET_S [5; 2]   QUIET_PROBE_S [0.2]
#   FOREIGN_MAX [15]
#   CASES      a bash regex of case names replacing the default selection
#   REPORT_NAME  report file name in bench/results/ instead of <UTC date>[-quick].md
#   RESULTS_DIR  [bench/results] where the report, charts and raw data go (a trial run: /tmp/...)
#   BENCH_BASE [/tmp/qcache-bench]  PG_PORT [25452] POOL_PORT [29989] PCP_PORT [29888]
#   MC_PORT [21221] REDIS_PORT [26389]  (below the ephemeral range 32768-60999, where an outgoing
#   connection can hold a port for a minute, and unlike the shared harness's defaults)
#   MEM_* knobs of bench/memory.sh (MEM_MEMORY [32MB; 16MB], MEM_MAX_ENTRIES [auto],
#   MEM_ENTRY_BYTES [as SIZES; "100 1000000"], MEM_PORT [25443], MEM_REDIS_PORT [26393])
#   RB_R [3; 1] RB_T [1] RB_INVALS [500; 100] of bench/redis.sh
#   IX_SIZES ["10000 100000 1000000"] IX_OPS [2000; 1000] IX_INVALS [50] IX_REPS [3; 1] of
#   bench/index_curve.sh
#
# Adding a case: a pgbench script in bench/qcache/scripts/ named qcache_*.sql
# (first line "-- bench-modes: prepared simple": also run as <name>_simple with -M simple),
# a "loop_qcache_*|expr" line in bench/qcache/qcache.loops, setup in bench/qcache/setup.sql,
# GUCs in bench/qcache/qcache.conf; then, for a target or a table row, a few lines in report.py.
# Other baselines: add their names to BASELINES below.
set -Eeuo pipefail
# The whole script is one compound command, read before it runs: editing this file while a run
# is in progress cannot change what that run executes.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ORIG_ARGS=("$@")
T_SUITE=$(date +%s)

log() { printf '[%(%H:%M:%S)T] bench: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

QUICK=0 ALL=0 APT=1 BUILD=1 MEMORY=1 REDIS=1 INDEX=1
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    --all) ALL=1 ;;
    --no-apt) APT=0 ;;
    --no-build) BUILD=0 ;;
    --no-memory) MEMORY=0 ;;
    --no-redis) REDIS=0 ;;
    --no-index) INDEX=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $a" ;;
  esac
done

source "$(dirname "${BASH_SOURCE[0]}")/scratch_lib.sh"
bench_lock
T_SUITE=$(date +%s)   # the wall time counts from here, not from the wait

# Knobs the caller set explicitly, for the record of the command.
SET_KNOBS=""
for k in T R CLIENTS SHORT_T CURVE_CLIENTS SIZES REDIS_N JOBS LOOP_N LOOP_REPS QUIET_BUDGET_S FOREIGN_MAX CASES \
         MEM_MEMORY MEM_MAX_ENTRIES MEM_ENTRY_BYTES RB_T RB_R RB_INVALS IX_SIZES IX_OPS IX_INVALS IX_REPS; do
  [ -n "${!k+x}" ] && SET_KNOBS+="$k=$(printf '%q' "${!k}") "
done

if [ "$QUICK" = 1 ]; then
  : "${T:=1}" "${R:=1}" "${QUIET_BUDGET_S:=2}" "${CLIENTS:=1}" "${CURVE_CLIENTS:=8}"
  : "${SIZES:=100 10000 1000000}" "${MEM_ENTRY_BYTES:=100 1000000}" "${MEM_MEMORY:=16MB}"
  : "${REDIS_N:=20000}"
fi
: "${T:=1}" "${R:=3}" "${CLIENTS:=1 8}" "${JOBS:=2}" "${LOOP_N:=100000}" "${LOOP_REPS:=3}"
: "${SHORT_T:=1}" "${CURVE_CLIENTS:=2 4 16 32}" "${SIZES:=100 1000 10000 100000 1000000}"
: "${REDIS_N:=30000}" "${QUIET_BUDGET_S:=5}" "${FOREIGN_MAX:=15}" "${QUIET_PROBE_S:=0.2}"
: "${BENCH_BASE:=/tmp/qcache-bench}" "${PG_PORT:=25452}" "${POOL_PORT:=29989}" "${PCP_PORT:=29888}"
: "${MC_PORT:=21221}" "${REDIS_PORT:=26389}"
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${MEM_MEMORY:=32MB}" "${MEM_ENTRY_BYTES:=$SIZES}"
export MEM_MEMORY MEM_MAX_ENTRIES MEM_ENTRY_BYTES MEM_KEY_BYTES MEM_BATCH MEM_FINE MEM_BASE MEM_PORT
[[ $R =~ ^[1-9][0-9]*$ ]] || die "R must be a positive integer"
for b in $SIZES; do [[ $b =~ ^[0-9]+$ ]] && [ "$b" -ge 2 ] && [ "$b" -le 1000000 ] || die "SIZES: $b is not 2..1000000"; done

# The baselines the targets compare against (peers harness case names, and the baselines among
# bench/qcache/scripts: fn_agg_const*, upd_plain); the qcache cases are every qcache_* pgbench
# script but qcache_set (the 10% sets of qcache_mixed measure sets), the upd_watched_* scripts,
# every loop_qcache_* loop, and the size_* cases of the latency-against-size curve.
BASELINES="pg_select1 pg_select1_simple fn_sql_const unlogged_kv pgmemcache_get redis_get pg_pk pg_agg"
BASELINES+=" pgpool_agg pgpool_agg_simple fn_agg_const fn_agg_const_simple upd_plain"
BASELINE_LOOPS="loop_unlogged_subq"
UPD_CASES="upd_watched_.*"
if [ "$QUICK" = 1 ]; then
  UPD_CASES="upd_watched_10000"
fi
# The get cases of the TPS-against-clients curve, and the mixed workloads of the sets and
# invalidations curve: they also run at CURVE_CLIENTS (with SHORT_T).
CURVE_CASES="^(pg_select1|fn_sql_const|unlogged_kv|pgmemcache_get|redis_get|qcache_get|qcache_mixed|qcache_mixed_inval)\$"
# At each client count the cases run in this order (the others after them), each next to the
# baselines it is compared with.
CASE_ORDER="pg_select1 fn_sql_const qcache_get unlogged_kv pgmemcache_get qcache_mixed qcache_mixed_inval
  pg_pk qcache_miss_fill pg_agg pgpool_agg fn_agg_const qcache_fetch_agg qcache_fetch_json_agg
  pg_select1_simple pgpool_agg_simple fn_agg_const_simple qcache_fetch_agg_simple qcache_fetch_json_agg_simple
  upd_plain upd_watched_0 upd_watched_100 upd_watched_10000"
CASE_ORDER=$(echo $CASE_ORDER)
if [ -n "${CASES:-}" ]; then CASE_FILTER=$CASES
elif [ "$ALL" = 1 ]; then CASE_FILTER=.
else
  b="$BASELINES $BASELINE_LOOPS"
  CASE_FILTER="^(${b// /|}|qcache_(get|mixed|mixed_inval|miss_fill|fetch_.*)|$UPD_CASES|loop_qcache_.*|size_.*)\$"
fi

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and the servers run as user postgres via runuser)"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
DAY=$(date -u +%Y-%m-%d)
RESULTS_DIR="${RESULTS_DIR:-$HERE/results}"   # RESULTS_DIR=/tmp/x: a trial run that leaves bench/results alone
RAW="$RESULTS_DIR/raw/$STAMP"
REPORT="$RESULTS_DIR/$DAY.md"
[ "$QUICK" = 1 ] && REPORT="$RESULTS_DIR/$DAY-quick.md"
[ -n "${REPORT_NAME:-}" ] && REPORT="$RESULTS_DIR/${REPORT_NAME%.md}.md"
mkdir -p "$RAW"
CONSOLE="$RAW/console.txt"
: >"$CONSOLE"
log "suite $STAMP: raw data in ${RAW#$REPO/}, report ${REPORT#$REPO/}"

# ---------------------------------------------------------------- 1. packages
PKGS="postgresql-15 postgresql-server-dev-15 postgresql-15-pgmemcache pgpool2 memcached
      redis-server redis-tools libhiredis-dev gcc make python3 gnuplot-nox iproute2 procps util-linux"
if [ "$APT" = 1 ]; then
  missing=""
  for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+="$p "
  done
  if [ -n "$missing" ]; then
    log "apt-get install $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >>"$RAW/apt.txt" 2>&1 || die "apt-get update failed (see $RAW/apt.txt)"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >>"$RAW/apt.txt" 2>&1 \
      || die "apt-get install failed (see $RAW/apt.txt)"
  else
    log "packages present"
  fi
fi

# ---------------------------------------------------------------- 2. build and install qcache
QC_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
QC_DIRTY=0
[ -n "$(git -C "$REPO" status --porcelain -- . ':(exclude)bench' 2>/dev/null)" ] && QC_DIRTY=1
if [ "$BUILD" = 1 ]; then
  # Build in a copy, so that a concurrent build in the working tree is neither disturbed nor
  # picked up half-done.
  BUILD_DIR="$BENCH_BASE-build"
  case "$BUILD_DIR" in /tmp/?*) ;; *) die "BENCH_BASE must be under /tmp";; esac
  rm -rf "$BUILD_DIR"; mkdir -p "$BUILD_DIR"
  (cd "$REPO" && tar --exclude=./.git --exclude=./bench --exclude='./tmp_check*' --exclude=./results \
     --exclude=./log --exclude=./output_iso --exclude='*.o' --exclude='*.bc' --exclude='*.so' -cf - .) \
    | tar -C "$BUILD_DIR" -xf -
  log "building qcache $QC_REV$([ $QC_DIRTY = 1 ] && echo ' (uncommitted changes)') in $BUILD_DIR"
  { make -C "$BUILD_DIR" -j2 PG_CONFIG="$PGBIN/pg_config" && make -C "$BUILD_DIR" PG_CONFIG="$PGBIN/pg_config" install; } \
    >"$RAW/build.txt" 2>&1 || { tail -20 "$RAW/build.txt" >&2; die "qcache build failed (see $RAW/build.txt)"; }
  rm -rf "$BUILD_DIR"
fi
[ -r "$("$PGBIN/pg_config" --sharedir)/extension/qcache.control" ] || die "qcache is not installed"

{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command=${SET_KNOBS}bash bench/run.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"
  echo "mode=$([ "$QUICK" = 1 ] && echo quick || echo full)"
  echo "qcache_rev=$QC_REV"; echo "qcache_dirty=$QC_DIRTY"
  echo "qcache_src=$REPO (working tree)"
  so="$("$PGBIN/pg_config" --pkglibdir)/qcache.so"
  echo "qcache_build=$([ "$BUILD" = 1 ] && echo "built by this run" || echo "installed before the run (--no-build)"): $(sed -n 's/^default_version = //p' "$("$PGBIN/pg_config" --sharedir)/extension/qcache.control" | tr -d "'") $(basename "$so") of $(date -u -r "$so" '+%Y-%m-%d %H:%M UTC'), sha1 $(sha1sum "$so" | cut -c1-12)"
  echo "R=$R"; echo "T=$T"; echo "short_T=$SHORT_T"; echo "clients=$CLIENTS"; echo "curve_clients=$CURVE_CLIENTS"
  echo "sizes=$SIZES"; echo "case_filter=$CASE_FILTER"
} >"$RAW/suite.info"

# ---------------------------------------------------------------- 3. the harness, R times
# Every script runs with the harness's -M prepared; one whose first line is
# "-- bench-modes: prepared simple" runs a second time as <name>_simple with -M simple (the
# "@simple" suffix of the harness's EXTRA_SCRIPTS).
SCRIPTS=""
for f in "$HERE"/qcache/scripts/*.sql; do
  n=$(basename "$f" .sql)
  SCRIPTS+="$n=qcache/scripts/$n.sql "
  if head -1 "$f" | grep -qE '^-- bench-modes:.*\bsimple\b'; then
    SCRIPTS+="${n}_simple=qcache/scripts/$n.sql@simple "
  fi
done
# The latency-against-size cases, generated for each size of SIZES (qcache/setup.sql stores the
# values and creates size_const_<N>() from BENCH_SIZES): size_qcache_get_<N> reads one of 10
# keys holding N bytes of JSON; size_const_<N> returns the same N bytes from a constant (the
# floor); the harness adds size_redis_get_<N> (REDIS_SIZES). They run at -c 1, for SHORT_T.
mkdir -p "$RAW/scripts"
for b in $SIZES; do
  printf '%s\n' '\set k random(1, 10)' "SELECT qcache_get('sz$b:' || :k);" >"$RAW/scripts/size_qcache_get_$b.sql"
  printf '%s\n' "SELECT size_const_$b();" >"$RAW/scripts/size_const_$b.sql"
  SCRIPTS+="size_qcache_get_$b=$RAW/scripts/size_qcache_get_$b.sql size_const_$b=$RAW/scripts/size_const_$b.sql "
done
# qcache_fetch_agg and setup.sql must fetch the very aggregate the peers' pgpool_agg runs.
AGG_TEXT=$(tr '\n' ' ' <"$HERE/peers/scripts/agg.sql" | sed 's/[; ]*$//')
for f in "$HERE"/qcache/scripts/qcache_fetch_*agg.sql "$HERE/qcache/setup.sql"; do
  grep -qF "'$AGG_TEXT'" "$f" || die "$f does not hold the text of peers/scripts/agg.sql ($AGG_TEXT)"
done
# RAW is new for each suite run, so RESET_RAW=1 on the first harness run only guards against a
# reused directory. It deletes $RAW/*.tsv, *.meta, *.commands, *.log: the suite's own files
# there are named *.txt and *.info so that it spares them.
OK=0 FAILED=0
for r in $(seq 1 "$R"); do
  log "harness run $r/$R (T=$T, clients {$CLIENTS}, cases $CASE_FILTER)"
  if (cd "$HERE" && env \
        BASE="$BENCH_BASE" PG_PORT="$PG_PORT" POOL_PORT="$POOL_PORT" PCP_PORT="$PCP_PORT" \
        MC_PORT="$MC_PORT" REDIS_PORT="$REDIS_PORT" PGBIN="$PGBIN" \
        T="$T" CLIENTS="$CLIENTS" JOBS="$JOBS" LOOP_N="$LOOP_N" LOOP_REPS="$LOOP_REPS" \
        QUIET_BUDGET_S="$QUIET_BUDGET_S" FOREIGN_MAX="$FOREIGN_MAX" CASE_FILTER="$CASE_FILTER" \
        QUIET_PROBE_S="$QUIET_PROBE_S" CURVE_CASES="$CURVE_CASES" CURVE_CLIENTS="$CURVE_CLIENTS" \
        SHORT_T="$SHORT_T" SHORT_CASES='^size_' REDIS_SIZES="$SIZES" REDIS_N="$REDIS_N" BENCH_SIZES="$SIZES" \
        CASE_ORDER="$CASE_ORDER" \
        EXTRA_PRELOAD=qcache EXTRA_PG_CONF=qcache/qcache.conf EXTRA_SETUP_SQL=qcache/setup.sql \
        EXTRA_SCRIPTS="${SCRIPTS% }" EXTRA_LOOPS=qcache/qcache.loops EXTRA_TARGET=pg \
        RAW_DIR="$RAW" RESULTS="$RAW/peers.md" RESET_RAW="$([ "$r" = 1 ] && echo 1 || echo 0)" \
        bash peers/run.sh) 2>&1 | tee -a "$CONSOLE"; then
    OK=$((OK + 1))
  else
    FAILED=$((FAILED + 1)); log "harness run $r failed (see $CONSOLE)"
  fi
done
echo "runs_ok=$OK" >>"$RAW/suite.info"; echo "runs_failed=$FAILED" >>"$RAW/suite.info"

# ---------------------------------------------------------------- 4. memory per entry
MEM_RC=0
if [ "$MEMORY" = 1 ]; then
  log "memory step"
  bash "$HERE/memory.sh" "$RAW" 2>&1 | tee -a "$CONSOLE" || { MEM_RC=1; log "memory step failed"; }
fi

# ---------------------------------------------------------------- 4b. the Redis level
REDIS_RC=0
if [ "$REDIS" = 1 ]; then
  log "redis step"
  if [ "$QUICK" = 1 ]; then : "${RB_R:=1}" "${RB_T:=1}" "${RB_INVALS:=100}"; fi
  RB_R="${RB_R:-3}" RB_T="${RB_T:-1}" RB_INVALS="${RB_INVALS:-500}" PGBIN="$PGBIN" \
    bash "$HERE/redis.sh" "$RAW" 2>&1 | tee -a "$CONSOLE" || { REDIS_RC=1; log "redis step failed"; }
fi

# ---------------------------------------------------------------- 4c. cost against the cache's size
INDEX_RC=0
if [ "$INDEX" = 1 ]; then
  log "index step"
  if [ "$QUICK" = 1 ]; then : "${IX_OPS:=1000}" "${IX_REPS:=1}"; fi
  IX_SIZES="${IX_SIZES:-10000 100000 1000000}" IX_OPS="${IX_OPS:-2000}" IX_INVALS="${IX_INVALS:-50}" \
    IX_REPS="${IX_REPS:-3}" PGBIN="$PGBIN" \
    bash "$HERE/index_curve.sh" "$RAW" 2>&1 | tee -a "$CONSOLE" || { INDEX_RC=1; log "index step failed"; }
fi

# ---------------------------------------------------------------- 5. report and charts
so="$("$PGBIN/pg_config" --pkglibdir)/qcache.so"
grep -q "sha1 $(sha1sum "$so" | cut -c1-12)" "$RAW/suite.info" \
  || { echo "qcache_changed=qcache.so was replaced during the run (now $(date -u -r "$so" '+%H:%M UTC')): the samples may not all measure the same build" >>"$RAW/suite.info"; log "warning: qcache.so changed during the run"; }
echo "wall_s=$(( $(date +%s) - T_SUITE ))" >>"$RAW/suite.info"
/usr/bin/python3 "$HERE/report.py" --raw-dir "$RAW" --out "$REPORT" --foreign-max "$FOREIGN_MAX" \
  || die "report failed"
[ -f "$RAW/index_curve.md" ] && { echo; cat "$RAW/index_curve.md"; } >>"$REPORT"
WALL=$(( $(date +%s) - T_SUITE ))
echo
sed -n '/^## Targets/,/^## The cases/p' "$REPORT" | sed '$d'
log "report: ${REPORT#$REPO/}, charts in ${RESULTS_DIR#$REPO/}/charts/, raw data: ${RAW#$REPO/}"
log "wall time: $WALL s ($((WALL / 60)) min $((WALL % 60)) s)"
[ "$OK" -gt 0 ] || die "no harness run completed"
[ "$MEM_RC" = 0 ] || die "the memory step failed"
[ "$REDIS_RC" = 0 ] || die "the redis step failed"
[ "$INDEX_RC" = 0 ] || die "the index step failed"

exit
}
