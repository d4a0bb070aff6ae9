#!/usr/bin/env bash
# Memory per entry: how many fixed-size entries fit in qcache.memory.
#
# Starts its own throw-away cluster (initdb as user postgres under $MEM_BASE, 127.0.0.1 only,
# port $MEM_PORT) with qcache preloaded, fills the cache with entries of exactly
# MEM_ENTRY_BYTES bytes until the first eviction (evictions_memory > 0) or the first set that
# returns false, and reports how many entries fit, qcache.memory / entries (bytes per entry)
# and that minus the entry's own bytes (overhead per entry). Stops the cluster (pg_ctl, by
# its data directory) on every exit path.
#
# What "an entry of N bytes" means here: key + value = N bytes, no tags, ttl 0, where
#   key   = 'm' || lpad(i::text, MEM_KEY_BYTES - 1, '0')      (MEM_KEY_BYTES bytes)
#   value = to_jsonb(lpad(i::text, L, 'v'))                   (a jsonb string)
#   with L chosen so that pg_column_size(value) = VARSIZE(value) = N - MEM_KEY_BYTES.
# These are exactly the bytes qcache must keep (its key length and the jsonb's VARSIZE);
# everything else (entry header, allocator rounding and metadata, the bucket array, the stat
# slots) is overhead.
#
# "Entries that fit" is the number of entries in the cache just before the batch of sets in
# which the first eviction happened. A first pass fills in batches of MEM_BATCH; a second pass,
# on a freshly restarted (empty) cache, refills that many in one batch and then continues in
# batches of MEM_FINE (fewer for large entries: at most 1/1000 of the count), so the figure is
# exact to that many entries.
#
# Redis, for comparison: a redis-server of its own (127.0.0.1:MEM_REDIS_PORT, stopped by its
# pid) receives, for each entry size, as many entries as fitted in qcache, under the same keys,
# each value being the JSON text of qcache's value (what qcache's second level stores in Redis:
# N - MEM_KEY_BYTES - 10 bytes, as a jsonb string's VARSIZE carries 12 bytes of headers that
# its text form replaces by 2 quotes). Recorded: `MEMORY USAGE key SAMPLES 0` (median of 5 keys)
# and used_memory after − before / entries (everything Redis allocated, its hash table included).
#
# Usage: bash bench/memory.sh OUT_DIR     (as root; writes OUT_DIR/memory.tsv and memory.log)
# Knobs (env, defaults in brackets):
#   MEM_MEMORY [64MB]                  qcache.memory of the cluster
#   MEM_MAX_ENTRIES [auto]             qcache.max_entries values to measure, one fill each; auto:
#                                      for each entry size, the smallest power of 2 (at least 1024)
#                                      >= MEM_MEMORY / (entry size + 64), i.e. just above the
#                                      entries that fit if the overhead is at least 64 bytes, as a
#                                      DBA would size it (the bucket array, 8 bytes per bucket, is
#                                      allocated up front); if the server refuses a value because
#                                      the index does not fit, it is halved. A row "limited by
#                                      max_entries" means the guess was too small.
#   MEM_ENTRY_BYTES ["100 1000 10000 100000 1000000"]  entry sizes (key + value bytes), one fill each
#   MEM_REDIS [1]                      also measure Redis (0: qcache only)
#   MEM_REDIS_PORT [26393]
#   MEM_KEY_BYTES [10]                 key length in bytes (2..12)
#   MEM_BATCH [50000] MEM_FINE [100]   batch sizes of the two passes
#   MEM_BASE [/tmp/qcache-bench-mem]   MEM_PORT [25443]
set -Eeuo pipefail
# The whole script is one compound command, read before it runs: editing this file while a run
# is in progress cannot change what that run executes.
{

OUT=${1:?usage: memory.sh OUT_DIR}
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${MEM_MEMORY:=64MB}" "${MEM_MAX_ENTRIES:=auto}" "${MEM_ENTRY_BYTES:=100 1000 10000 100000 1000000}"
: "${MEM_REDIS:=1}" "${MEM_REDIS_PORT:=26393}"
: "${MEM_KEY_BYTES:=10}" "${MEM_BATCH:=50000}" "${MEM_FINE:=100}"
: "${MEM_BASE:=/tmp/qcache-bench-mem}" "${MEM_PORT:=25443}"
H=127.0.0.1

log() { printf '[%(%H:%M:%S)T] memory: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/scratch_lib.sh"
bench_lock

case "$MEM_BASE" in /tmp/?*) ;; *) die "MEM_BASE must be a scratch dir under /tmp (got $MEM_BASE)";; esac
[ "$MEM_KEY_BYTES" -ge 2 ] && [ "$MEM_KEY_BYTES" -le 12 ] || die "MEM_KEY_BYTES must be 2..12"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TSV="$OUT/memory.tsv"
MLOG="$OUT/memory.log"
PGDATA_DIR="$MEM_BASE/pgdata"
PGLOG="$MEM_BASE/postgres.log"

# ---------------------------------------------------------------- cleanup (always stop our cluster)
REDIS_PID=""
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  pg_stop
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; fi
  [ -f "$PGLOG" ] && cp "$PGLOG" "$OUT/memory-postgres.log"
  rm -rf "$MEM_BASE"
  log "cluster stopped (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A cluster a previous, killed run left behind: stop it by its data directory.
if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
  log "stopping a stale cluster in $PGDATA_DIR"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true
fi
if [ "$MEM_REDIS" = 1 ]; then
  ss -Hltn "( sport = :$MEM_REDIS_PORT )" | grep -q . && die "port $MEM_REDIS_PORT is already in use"
fi
scratch_init "$MEM_BASE" "$MEM_PORT" "$MLOG" 10 32MB
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
qcache.memory = '$MEM_MEMORY'
include_if_exists = 'qcache_mem.conf'
EOF

PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$H" -p "$MEM_PORT" -U postgres -d postgres)

# pg_start MAX_ENTRIES: start with that qcache.max_entries; halve it while the server refuses
# it because the index does not fit. Prints the value that started.
pg_start() {
  local me=$1
  while :; do
    echo "qcache.max_entries = $me" >"$PGDATA_DIR/qcache_mem.conf"
    chown postgres:postgres "$PGDATA_DIR/qcache_mem.conf"
    local mark; mark=$(wc -l <"$PGLOG")
    if runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 60 start >/dev/null 2>&1; then
      echo "$me"; return 0
    fi
    if tail -n +"$((mark + 1))" "$PGLOG" | grep -q 'too small for qcache.max_entries' && [ "$me" -gt 1024 ]; then
      log "qcache.max_entries=$me: index does not fit in $MEM_MEMORY, halving"
      me=$((me / 2)); continue
    fi
    tail -20 "$PGLOG" >&2; die "postgres did not start (qcache.max_entries=$me)"
  done
}

SETUP_SQL=$(cat <<'EOF'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS qcache;
CREATE OR REPLACE FUNCTION mem_key(i int, keybytes int) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT 'm' || lpad(i::text, keybytes - 1, '0') $$;
-- string length L such that VARSIZE(to_jsonb(L chars)) = valbytes, or NULL
CREATE OR REPLACE FUNCTION mem_vlen(valbytes int) RETURNS int LANGUAGE sql IMMUTABLE
  AS $$ SELECT min(l) FROM generate_series(greatest(valbytes - 32, 0), valbytes) l
        WHERE pg_column_size(to_jsonb(repeat('v', l))) = valbytes $$;
-- Sets keys lo..hi (first batch of first_batch sets, then batches of batch) until the first
-- eviction or the first set that returns false. Returns the cache's entries and bytes_used
-- just before the batch in which that happened, why it stopped, and the number of sets made.
CREATE OR REPLACE FUNCTION mem_fill(lo int, hi int, first_batch int, batch int,
                                    keybytes int, vlen int,
                                    OUT fit bigint, OUT fit_bytes_used bigint, OUT stop text,
                                    OUT sets bigint, OUT evicted bigint)
LANGUAGE plpgsql AS $$
DECLARE i int := lo; b int := greatest(first_batch, 1); nf bigint; e0 bigint; u0 bigint; ev bigint;
BEGIN
  batch := greatest(batch, 1);
  sets := 0;
  WHILE i <= hi LOOP
    SELECT entries, bytes_used INTO e0, u0 FROM qcache_stats;
    SELECT count(*) FILTER (WHERE NOT qcache_set(mem_key(j, keybytes), to_jsonb(lpad(j::text, vlen, 'v')), 0))
      INTO nf FROM generate_series(i, least(i + b - 1, hi)) j;
    sets := sets + least(i + b - 1, hi) - i + 1;
    SELECT evictions_memory INTO ev FROM qcache_stats;
    IF ev > 0 OR nf > 0 THEN
      fit := e0; fit_bytes_used := u0; evicted := ev;
      stop := CASE WHEN nf > 0 THEN 'a set returned false' ELSE 'evictions_memory > 0' END;
      RETURN;
    END IF;
    i := i + b; b := batch;
  END LOOP;
  SELECT entries, bytes_used INTO fit, fit_bytes_used FROM qcache_stats;
  stop := 'reached hi without eviction'; evicted := 0;
END $$;
EOF
)

mem_bytes=$(awk -v m="$MEM_MEMORY" 'BEGIN{
  n = m + 0; u = toupper(m); sub(/^[0-9.]+ */, "", u)
  f = (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : (u == "" ? 1024 : 0)
  if (!f) exit 1; printf "%.0f", n * f }') || die "cannot parse MEM_MEMORY=$MEM_MEMORY (use kB, MB or GB)"

RCLI=(/usr/bin/redis-cli -h "$H" -p "$MEM_REDIS_PORT")
if [ "$MEM_REDIS" = 1 ]; then
  mkdir -p "$MEM_BASE/redis"
  /usr/bin/redis-server --bind "$H" --port "$MEM_REDIS_PORT" --save '' --appendonly no \
    --dir "$MEM_BASE/redis" --daemonize no >>"$MLOG" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do "${RCLI[@]}" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  "${RCLI[@]}" PING | grep -q PONG || die "redis-server did not start"
fi
# redis_measure ENTRIES VALUE_TEXT_BYTES: prints "memory_usage used_memory_per_entry"
redis_measure() {
  "${RCLI[@]}" FLUSHALL >/dev/null
  local u0 u1 mu
  u0=$("${RCLI[@]}" INFO memory | awk -F: '/^used_memory:/{print $2+0}')
  "${RCLI[@]}" EVAL "local v = '\"' .. string.rep('v', tonumber(ARGV[2]) - 2) .. '\"'
    for i = 1, tonumber(ARGV[1]) do redis.call('SET', string.format('m%0$((MEM_KEY_BYTES - 1))d', i), v) end
    return redis.call('DBSIZE')" 0 "$1" "$2" >/dev/null
  u1=$("${RCLI[@]}" INFO memory | awk -F: '/^used_memory:/{print $2+0}')
  mu=$(for k in 1 2 3 4 5; do
         i=$(( k * $1 / 6 + 1 ))
         "${RCLI[@]}" MEMORY USAGE "m$(printf "%0$((MEM_KEY_BYTES - 1))d" "$i")" SAMPLES 0
       done | sort -n | sed -n 3p)
  echo "$mu $(awk -v a="$u0" -v b="$u1" -v n="$1" 'BEGIN{printf "%.1f", (b - a) / n}')"
  "${RCLI[@]}" FLUSHALL >/dev/null
}

printf 'entry_bytes\tkey_bytes\tvalue_bytes\tmemory_bytes\tmax_entries\tentries_fit\tbytes_per_entry\toverhead_per_entry\taccounted_bytes_per_entry\tbytes_used_at_fit\tbytes_limit\tlimited_by\tstop\tfill_s\tredis_value_bytes\tredis_memory_usage\tredis_used_per_entry\n' >"$TSV"

for eb in $MEM_ENTRY_BYTES; do
  vb=$((eb - MEM_KEY_BYTES))
  mes=$MEM_MAX_ENTRIES
  if [ "$mes" = auto ]; then
    mes=1024; while [ "$mes" -lt $(( mem_bytes / (eb + 64) )) ]; do mes=$((mes * 2)); done
  fi
  for me_req in $mes; do
    me=$(pg_start "$me_req")
    "${PSQL[@]}" -c "$SETUP_SQL" >>"$MLOG" 2>&1 || die "setup failed (see $MLOG)"
    vlen=$("${PSQL[@]}" -At -c "SELECT mem_vlen($vb)")
    [ -n "$vlen" ] || die "no jsonb string has VARSIZE $vb"
    chk=$("${PSQL[@]}" -At -c "SELECT octet_length(mem_key(123, $MEM_KEY_BYTES)) + pg_column_size(to_jsonb(lpad('123', $vlen, 'v')))")
    [ "$chk" = "$eb" ] || die "entry size check: $chk bytes, expected $eb"
    limit=$("${PSQL[@]}" -At -c "SELECT bytes_limit FROM qcache_stats")
    # pass-1 batches: at most 1/32 of what could fit; pass-2 steps: at most 1/1000 of pass 1
    batch=$(( mem_bytes / eb / 32 )); [ "$batch" -gt "$MEM_BATCH" ] && batch=$MEM_BATCH
    [ "$batch" -ge 1 ] || batch=1
    log "entry ${eb} B (key ${MEM_KEY_BYTES} B + jsonb ${vb} B), qcache.memory=$MEM_MEMORY, max_entries=$me: pass 1 (batches of $batch)"
    t0=$(date +%s.%N)
    IFS='|' read -r fit1 _ stop1 sets1 _ < <("${PSQL[@]}" -At -c \
      "SELECT * FROM mem_fill(1, 2000000000, $batch, $batch, $MEM_KEY_BYTES, $vlen)")
    fine=$(( fit1 / 1000 )); [ "$fine" -gt "$MEM_FINE" ] && fine=$MEM_FINE
    [ "$fine" -ge 1 ] || fine=1
    first=$fit1; [ "$first" -ge 1 ] || first=$fine
    echo "pass1 entry=$eb max_entries=$me: fit>=$fit1 stop=$stop1 sets=$sets1" >>"$MLOG"
    # pass 2 on an empty cache: refill fit1 at once, then fine batches
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
    me2=$(pg_start "$me")
    [ "$me2" = "$me" ] || die "restart changed max_entries"
    t1=$(date +%s.%N)
    IFS='|' read -r fit used stop sets ev < <("${PSQL[@]}" -At -c \
      "SELECT * FROM mem_fill(1, 2000000000, $first, $fine, $MEM_KEY_BYTES, $vlen)")
    t2=$(date +%s.%N)
    echo "pass2 entry=$eb max_entries=$me (first batch $first, then $fine): fit=$fit bytes_used=$used stop=$stop sets=$sets evicted=$ev" >>"$MLOG"
    "${PSQL[@]}" -c "SELECT * FROM qcache_stats" >>"$MLOG" 2>&1
    [ "$fit" -ge "$fit1" ] || log "warning: pass 2 fit $fit < pass 1 lower bound $fit1"
    # which limit bound: the entry count, or the memory
    if [ "$fit" -ge $((me - fine)) ]; then lim=max_entries; else lim=memory; fi
    rvb=$((vlen + 2)); rmu=""; rpe=""
    if [ "$MEM_REDIS" = 1 ]; then
      read -r rmu rpe < <(redis_measure "$fit" "$rvb")
      log "redis: $fit entries of a ${MEM_KEY_BYTES}-byte key + ${rvb}-byte JSON text: MEMORY USAGE $rmu B, used_memory $rpe B/entry"
    fi
    awk -v eb="$eb" -v kb="$MEM_KEY_BYTES" -v vb="$vb" -v mb="$mem_bytes" -v me="$me" -v fit="$fit" \
        -v rvb="$rvb" -v rmu="$rmu" -v rpe="$rpe" -v used="$used" -v lim_b="$limit" -v lim="$lim" -v stop="$stop" -v s="$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.1f", (b-a)+(c-b)}')" \
        'BEGIN{ OFS="\t"; bpe = mb / fit;
                print eb, kb, vb, mb, me, fit, sprintf("%.1f", bpe), sprintf("%.1f", bpe - eb),
                      sprintf("%.1f", used / fit), used, lim_b, lim, stop, s, rvb, rmu, rpe }' >>"$TSV"
    log "$(printf 'entry %s B, max_entries %s: %s entries fit (%s), %.1f B/entry, overhead %.1f B (limited by %s)' \
          "$eb" "$me" "$fit" "$stop" "$(awk -v m="$mem_bytes" -v f="$fit" 'BEGIN{print m/f}')" \
          "$(awk -v m="$mem_bytes" -v f="$fit" -v e="$eb" 'BEGIN{print m/f-e}')" "$lim")"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
  done
done
log "done: $TSV"

exit
}
