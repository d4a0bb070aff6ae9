#!/usr/bin/env bash
# Cost against the cache's size (SPEC 10, issue 12): the cost of qcache_invalidate_tag of a tag
# on 10 entries and of a tag on none, qcache_invalidate_prefix of a 10-entry namespace, a set
# into a full cache whose entries were all just read (it must evict), a set into a cache with
# room, and a get, at each of IX_SIZES entries.
#
# For each size N, a throw-away cluster of its own (initdb as user postgres under $IX_BASE,
# 127.0.0.1 only, port $IX_PORT; stopped with pg_ctl by its data directory on every exit
# path) with qcache.max_entries = N, so that N entries fill it, and qcache.memory large enough
# for them. Entry i (0 <= i < N) is key 'p<i / 10>:<i>' (namespaces of exactly 10 keys),
# value to_jsonb(i), ttl 0, tags {t<i / 10>, all} (tags of exactly 10 entries: the same 10 keys
# as the namespace; the tag steps take the first groups, the prefix steps the last ones). Steps, each an
# in-SQL loop timed with clock_timestamp() around one EXECUTE, minus the same loop with the call
# replaced by its argument expression (the loop's own cost):
#   set_room   IX_OPS sets of the last IX_OPS keys into the not yet full cache
#   (read every key once: now every entry is referenced, "hot")
#   get        IX_OPS gets of existing keys, spread over the cache
#   get_hot    the same over the first 10,000 keys only (the smallest cache's working set)
#   tag_none   IX_OPS tag invalidations of tags that no entry carries
#   tag10      IX_INVALS tag invalidations, each of a tag on 10 entries (keys 0..10*IX_INVALS-1)
#   prefix10   IX_INVALS prefix invalidations, each of a 10-key namespace 'p<j>:' (the last
#              namespaces, keys disjoint from tag10's)
#   (refill what the invalidations removed, read every key again)
#   set_full   IX_OPS sets of new keys into the full, hot cache: each evicts one entry
# and the counts the invalidations returned, which must be exactly 10 each.  (Tag invalidations
# also stamp their tags' slots of the invalidation points; entries whose tags share a slot
# become stale, and the sweeper frees them over the following seconds: the entry count is not
# the measure of what an invalidation removed.)  Then get, tag_none, tag10
# and prefix10 again end to end (pgbench -c 1 -M prepared -t IX_E2E, fresh tags from sequences):
# what an application pays, round trip included. Also bytes_used per entry
# at the fill (two tags, a namespace, a 1-6 byte value): the overhead beyond key, value and tags.
#
# Writes OUT_DIR/index_curve.tsv (size, step, microseconds per operation, operations, removed)
# and OUT_DIR/index_curve.md (the table, and the ratios the targets are about: each step at
# the largest size against the smallest, tag10 against get at the same size).
#
# Usage: bash bench/index_curve.sh OUT_DIR     (as root; qcache must be installed)
# Knobs (env, defaults in brackets): IX_SIZES ["10000 100000 1000000"] IX_OPS [2000]
#   IX_INVALS [50] IX_E2E [300] (transactions of each end-to-end step) IX_REPS [3] (each
#   step and its bare loop are timed IX_REPS times and the least of each is kept, as other load
#   on a shared machine only adds; the invalidation steps use fresh tags each time; set_room
#   runs once) IX_BASE [/tmp/qcache-bench-ix]
#   IX_PORT [25447]
#   IX_HUGE [0]: 1 runs each cluster with huge_pages = on, raising vm.nr_hugepages for the
#   run (as root) and putting the old value back on every exit path: 2 MB pages, the setting
#   PostgreSQL recommends for a large shared memory, make a random access to a large cache
#   cheaper (fewer TLB misses); the README reports the curve both ways.
set -Eeuo pipefail
{

OUT=${1:?usage: index_curve.sh OUT_DIR}
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${IX_SIZES:=10000 100000 1000000}" "${IX_OPS:=2000}" "${IX_INVALS:=50}" "${IX_REPS:=3}"
: "${IX_BASE:=/tmp/qcache-bench-ix}" "${IX_PORT:=25447}" "${IX_E2E:=300}"
H=127.0.0.1

log() { printf '[%(%H:%M:%S)T] index_curve: %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/scratch_lib.sh"
bench_lock

case "$IX_BASE" in /tmp/?*) ;; *) die "IX_BASE must be a scratch dir under /tmp";; esac
for n in $IX_SIZES; do
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge $((20 * (IX_INVALS * IX_REPS + IX_E2E) + 20)) ] \
    || die "IX_SIZES: $n must be at least 20 * (IX_INVALS * IX_REPS + IX_E2E) + 20"
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TSV="$OUT/index_curve.tsv"
MD="$OUT/index_curve.md"
XLOG="$OUT/index_curve.log"
PGDATA_DIR="$IX_BASE/pgdata"
PGLOG="$IX_BASE/postgres.log"

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  pg_stop
  [ -f "$PGLOG" ] && cp "$PGLOG" "$OUT/index_curve-postgres.log"
  [ -n "${HUGE_OLD:-}" ] && sysctl -q -w vm.nr_hugepages="$HUGE_OLD"
  rm -rf "$IX_BASE"
  log "cluster stopped (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true
fi
scratch_init "$IX_BASE" "$IX_PORT" "$XLOG" 10 32MB
echo "include = 'qcache_ix.conf'" >>"$PGDATA_DIR/postgresql.conf"

psql_ix() { runuser -u postgres -- "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$H" -p "$IX_PORT" -d postgres "$@"; }

printf 'size\tstep\tus_per_op\tops\tremoved\n' >"$TSV"

for N in $IX_SIZES; do
  NS=$((N / 10))
  # memory: about 300 bytes per entry and 64 MB besides
  MEMMB=$(( (N * 300) / 1048576 + 64 ))
  printf "qcache.memory = '%dMB'\nqcache.max_entries = %d\n" "$MEMMB" "$N" >"$PGDATA_DIR/qcache_ix.conf"
  if [ "${IX_HUGE:-0}" = 1 ]; then
    # the whole shared memory in 2 MB pages: qcache.memory, shared_buffers and 64 MB besides
    need=$(( (MEMMB + 32 + 64) / 2 ))
    : "${HUGE_OLD:=$(cat /proc/sys/vm/nr_hugepages)}"
    # pages free and not reserved by another process's mapping
    huge_avail() { awk '/HugePages_Free/ {f = $2} /HugePages_Rsvd/ {r = $2} END {print f - r}' /proc/meminfo; }
    # pages in use or reserved by any mapping (surplus ones included), plus what this needs
    [ "$(huge_avail)" -ge "$need" ] || sysctl -q -w vm.nr_hugepages=$(awk -v n="$need" \
      '/HugePages_Total/ {t = $2} /HugePages_Free/ {f = $2} /HugePages_Rsvd/ {r = $2}
       END {print t - f + r + n}' /proc/meminfo)
    [ "$(huge_avail)" -ge "$need" ] \
      || die "IX_HUGE=1: the kernel gave fewer than $need free huge pages"
    printf "huge_pages = on\n" >>"$PGDATA_DIR/qcache_ix.conf"
  fi
  chown postgres:postgres "$PGDATA_DIR/qcache_ix.conf"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGLOG" -w -t 120 start >>"$XLOG" 2>&1 \
    || die "the cluster did not start (see $PGLOG)"
  log "N=$N: qcache.memory=${MEMMB}MB, filling"
  psql_ix >>"$XLOG" 2>&1 <<SQL || die "setup failed at N=$N (see $XLOG)"
CREATE EXTENSION IF NOT EXISTS qcache;
-- the empty cache of this size (each size restarts the server with its own index)
DROP TABLE IF EXISTS ix_empty;
CREATE TABLE ix_empty AS SELECT bytes_used FROM qcache_stats;
-- the time of one statement in microseconds; its one value is kept in ix.last
CREATE OR REPLACE FUNCTION ix_us(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; t1 timestamptz; r text;
BEGIN
  t0 := clock_timestamp();
  EXECUTE q INTO r;
  t1 := clock_timestamp();
  PERFORM set_config('ix.last', coalesce(r, ''), false);
  RETURN extract(epoch FROM t1 - t0) * 1e6;
END \$\$;
-- Warm-up of a session before a timed step: one get per 16 entries, which maps (through
-- the kernel's fault-around) every page of the area into this backend's page tables.  A
-- fresh backend pays a minor page fault (about 5 us on this VM) for each 64 kB of shared
-- memory it touches first; at 1,000,000 entries (350 MB) the first thousands of operations
-- of a session are mostly faults, which would swamp the operation itself.
CREATE OR REPLACE FUNCTION ix_warm(n int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
  PERFORM count(qcache_get('p' || (i / 10) || ':' || i)) FROM generate_series(0, n - 1, 16) i;
END \$\$;
-- the fill, all but the last $IX_OPS keys
SELECT count(*) FILTER (WHERE qcache_set('p' || (i / 10) || ':' || i, to_jsonb(i), 0,
                                         ARRAY['t' || (i / 10), 'all']))
FROM generate_series(0, $N - $IX_OPS - 1) i;
SQL
  # one timed step: "step" "call expr" "bare expr" ops lo(first i); prints the microseconds of
  # the loop with the call and of the loop with the bare expression
  step() {
    local name=$1 call=$2 bare=$3 ops=$4 lo=$5
    psql_ix -F ' ' -c "SELECT ix_us('SELECT count($call) FROM generate_series($lo, $lo + $ops - 1) i'),
                              ix_us('SELECT count($bare) FROM generate_series($lo, $lo + $ops - 1) i')
                       FROM (SELECT ix_warm($N)) w"
  }
  # the same for a call that returns what it removed: prints "call_us bare_us removed"
# (both warm the session first: ix_warm)
  step_removed() {
    local call=$1 bare=$2 ops=$3 lo=$4
    psql_ix -c "SELECT ix_warm($N)" -c "SELECT set_config('ix.base',
                          ix_us('SELECT count($bare) FROM generate_series($lo, $lo + $ops - 1) i')::text, false)" \
            -c "SELECT set_config('ix.call',
                          ix_us('SELECT sum($call) FROM generate_series($lo, $lo + $ops - 1) i')::text, false)" \
            -c "SELECT current_setting('ix.call'), current_setting('ix.base'), current_setting('ix.last')" \
      | tail -n 1 | tr '|' ' '
  }
  # Each step is timed IX_REPS times; on a shared machine other load only adds, so the cost per
  # operation is (least time of the loop with the call - least time of the bare loop) / ops.
  # cost OPS: reads "call_us bare_us" lines on stdin
  cost() { awk -v o="$1" '{ if (c == "" || $1 < c) c = $1; if (b == "" || $2 < b) b = $2 }
                          END { printf "%.2f", (c - b) / o }'; }
  # set into a cache with room: the last IX_OPS keys
  us=$(step set_room "qcache_set(''p'' || (i / 10) || '':'' || i, to_jsonb(i), 0, ARRAY[''t'' || (i / 10), ''all''])" \
         "(''p'' || (i / 10) || '':'' || i, to_jsonb(i), ARRAY[''t'' || (i / 10), ''all''])" "$IX_OPS" $((N - IX_OPS)) \
         | cost "$IX_OPS")
  printf '%s\tset_room\t%s\t%s\t0\n' "$N" "$us" "$IX_OPS" >>"$TSV"
  read -r entries bytes limit < <(psql_ix -F ' ' -c "SELECT entries, bytes_used, bytes_limit FROM qcache_stats")
  [ "$entries" = "$N" ] || die "N=$N: the fill left $entries entries"
  empty=$(psql_ix -c "SELECT bytes_used FROM ix_empty")
  # key + value (VARSIZE of the jsonb) + tag strings, summed over the entries
  payload=$(psql_ix -c "SELECT sum(octet_length('p' || (i / 10) || ':' || i) + pg_column_size(to_jsonb(i))
                                  + octet_length('t' || (i / 10)) + 1 + 4)
                        FROM generate_series(0, $N - 1) i")
  printf '%s\tbytes_per_entry\t%s\t%s\t%s\n' "$N" \
    "$(awk -v b="$bytes" -v e="$empty" -v p="$payload" -v n="$N" 'BEGIN {printf "%.1f", (b - e - p) / n}')" \
    "$N" "$payload" >>"$TSV"
  printf '%s\tfixed_per_entry\t%s\t%s\t0\n' "$N" \
    "$(awk -v e="$empty" -v n="$N" 'BEGIN {printf "%.1f", e / n}')" "$N" >>"$TSV"

  hot() { psql_ix -c "SELECT count(qcache_get('p' || (i / 10) || ':' || i)) FROM generate_series(0, $N - 1) i" >/dev/null; }
  hot
  # get: spread over the cache (a stride coprime with N)
  g=(); for r in $(seq "$IX_REPS"); do
    g+=("$(step get "qcache_get(''p'' || ((i * 7919) % $N / 10) || '':'' || ((i * 7919) % $N))" \
            "(''p'' || ((i * 7919) % $N / 10) || '':'' || ((i * 7919) % $N))" "$IX_OPS" 0)")
  done
  printf '%s\tget\t%s\t%s\t0\n' "$N" "$(printf '%s\n' "${g[@]}" | cost "$IX_OPS")" "$IX_OPS" >>"$TSV"
  # get_hot: the same gets over the first 10,000 keys only, the working set of the smallest
  # cache at every size: what a get costs in a large cache when what it touches is in the
  # CPU's caches and TLB (the difference to get is the memory hierarchy, not the work)
  g=(); for r in $(seq "$IX_REPS"); do
    g+=("$(step get_hot "qcache_get(''p'' || ((i * 7919) % 10000 / 10) || '':'' || ((i * 7919) % 10000))" \
            "(''p'' || ((i * 7919) % 10000 / 10) || '':'' || ((i * 7919) % 10000))" "$IX_OPS" 0)")
  done
  printf '%s\tget_hot\t%s\t%s\t0\n' "$N" "$(printf '%s\n' "${g[@]}" | cost "$IX_OPS")" "$IX_OPS" >>"$TSV"
  # tag on no entry
  g=(); for r in $(seq "$IX_REPS"); do
    g+=("$(step tag_none "qcache_invalidate_tag(''none'' || i)" "(''none'' || i)" "$IX_OPS" $((r * IX_OPS)))")
  done
  printf '%s\ttag_none\t%s\t%s\t0\n' "$N" "$(printf '%s\n' "${g[@]}" | cost "$IX_OPS")" "$IX_OPS" >>"$TSV"
  # tag on 10 entries: tags t0..t(IX_INVALS*IX_REPS-1), fresh ones each repetition
  g=(); removed=0; for r in $(seq 0 $((IX_REPS - 1))); do
    read -r cu bu n < <(step_removed "qcache_invalidate_tag(''t'' || i)" "(''t'' || i)" "$IX_INVALS" $((r * IX_INVALS)))
    g+=("$cu $bu"); removed=$((removed + n))
  done
  printf '%s\ttag10\t%s\t%s\t%s\n' "$N" "$(printf '%s\n' "${g[@]}" | cost "$IX_INVALS")" $((IX_INVALS * IX_REPS)) "$removed" >>"$TSV"
  # a 10-key namespace: the last namespaces, fresh ones each repetition
  g=(); removed=0; for r in $(seq 0 $((IX_REPS - 1))); do
    read -r cu bu n < <(step_removed "qcache_invalidate_prefix(''p'' || i || '':'')" "(''p'' || i || '':'')" "$IX_INVALS" $((NS - (r + 1) * IX_INVALS)))
    g+=("$cu $bu"); removed=$((removed + n))
  done
  printf '%s\tprefix10\t%s\t%s\t%s\n' "$N" "$(printf '%s\n' "${g[@]}" | cost "$IX_INVALS")" $((IX_INVALS * IX_REPS)) "$removed" >>"$TSV"
  # End to end, as an application sees it: pgbench -c 1 -M prepared, one call per
  # transaction, the average latency in microseconds.  Fresh tags and namespaces from sequences.
  psql_ix -c "DROP SEQUENCE IF EXISTS ix_g, ix_t, ix_p;
              CREATE SEQUENCE ix_g; CREATE SEQUENCE ix_t START $((IX_INVALS * IX_REPS));
              CREATE SEQUENCE ix_p START $((IX_INVALS * IX_REPS + 1))" >/dev/null
  e2e() {
    local name=$1 sql=$2 f="$IX_BASE/$1.sql" out
    echo "$sql" >"$f"; chmod 644 "$f"
    out=$(runuser -u postgres -- "$PGBIN/pgbench" -n -M prepared -c 1 -t "$IX_E2E" -f "$f" \
            -h "$H" -p "$IX_PORT" postgres 2>>"$XLOG") || die "pgbench $name failed at N=$N"
    echo "$out" >>"$XLOG"
    printf '%s\t%s_e2e\t%s\t%s\t0\n' "$N" "$name" \
      "$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' | awk '{printf "%.1f", $1 * 1000}')" \
      "$IX_E2E" >>"$TSV"
  }
  e2e get "SELECT qcache_get('p' || (s / 10) || ':' || s) FROM (SELECT (nextval('ix_g') * 7919) % $N AS s) x;"
  e2e tag_none "SELECT qcache_invalidate_tag('none' || nextval('ix_g'));"
  e2e tag10 "SELECT qcache_invalidate_tag('t' || nextval('ix_t'));"
  e2e prefix10 "SELECT qcache_invalidate_prefix('p' || ($NS - nextval('ix_p')) || ':');"

  # refill what the invalidations removed, read everything again: full and hot
  psql_ix -c "SELECT count(qcache_set('p' || (i / 10) || ':' || i, to_jsonb(i), 0, ARRAY['t' || (i / 10), 'all']))
              FROM generate_series(0, $N - 1) i WHERE qcache_get('p' || (i / 10) || ':' || i) IS NULL" >/dev/null
  [ "$(psql_ix -c "SELECT entries FROM qcache_stats")" = "$N" ] || die "N=$N: the refill did not fill the cache"
  hot
  ev0=$(psql_ix -c "SELECT evictions_memory FROM qcache_stats")
  g=(); for r in $(seq 0 $((IX_REPS - 1))); do
    g+=("$(step set_full "qcache_set(''h'' || (i % 97) || '':'' || i, to_jsonb(i), 0, ARRAY[''th'' || (i / 10), ''all''])" \
            "(''h'' || (i % 97) || '':'' || i, to_jsonb(i), ARRAY[''th'' || (i / 10), ''all''])" "$IX_OPS" $((r * IX_OPS)))")
  done
  ev1=$(psql_ix -c "SELECT evictions_memory FROM qcache_stats")
  printf '%s\tset_full\t%s\t%s\t%s\n' "$N" "$(printf '%s\n' "${g[@]}" | cost "$IX_OPS")" $((IX_OPS * IX_REPS)) $((ev1 - ev0)) >>"$TSV"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >>"$XLOG" 2>&1
  log "N=$N done"
done

/usr/bin/python3 - "$TSV" "$MD" "$IX_INVALS" <<'PY'
import sys, csv
tsv, md, invals = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(tsv), delimiter='\t'))
sizes = sorted({int(r['size']) for r in rows})
steps = ['get', 'get_hot', 'set_room', 'set_full', 'tag_none', 'tag10', 'prefix10',
         'get_e2e', 'tag_none_e2e', 'tag10_e2e', 'prefix10_e2e']
v = {(int(r['size']), r['step']): r for r in rows}
out = ['## Cost against the cache\'s size (bench/index_curve.sh)', '',
       'Microseconds per operation, server side (in-SQL loops, the loop\'s own cost subtracted); '
       'the least time of the repetitions minus the least time of the bare loop (other load only adds). `removed`: the sum of the counts the invalidations returned (10 each). '
       'The `_e2e` rows: end to end, pgbench -c 1 -M prepared, average latency in microseconds.', '',
       '| step | ' + ' | '.join(f'{n:,} entries' for n in sizes) + f' | {sizes[-1]:,} / {sizes[0]:,} |',
       '|---|' + '---:|' * (len(sizes) + 1)]
for s in steps:
    cells = []
    for n in sizes:
        r = v.get((n, s))
        c = r['us_per_op'] if r else '-'
        if r and s in ('tag10', 'prefix10'):
            c += f" (removed {r['removed']} of {int(r['ops']) * 10})"
        if r and s == 'set_full':
            c += f" ({r['removed']} evicted)"
        cells.append(c)
    a, b = v.get((sizes[0], s)), v.get((sizes[-1], s))
    ratio = f"{float(b['us_per_op']) / float(a['us_per_op']):.2f}" if a and b and float(a['us_per_op']) > 0 else '-'
    out.append(f'| {s} | ' + ' | '.join(cells) + f' | {ratio} |')
out += ['', '| ratio at each size | ' + ' | '.join(f'{n:,}' for n in sizes) + ' |',
        '|---|' + '---:|' * len(sizes)]
for num, den, label in (('tag10_e2e', 'get_e2e', 'tag10 / get, end to end (target <= 5)'),
                        ('tag_none_e2e', 'get_e2e', 'tag_none / get, end to end'),
                        ('prefix10_e2e', 'get_e2e', 'prefix10 / get, end to end'),
                        ('tag10', 'get', 'tag10 / get, server side'),
                        ('tag_none', 'get', 'tag_none / get'),
                        ('set_full', 'set_room', 'set_full / set_room (target: a few)')):
    cells = []
    for n in sizes:
        a, b = v.get((n, num)), v.get((n, den))
        cells.append(f"{float(a['us_per_op']) / float(b['us_per_op']):.2f}" if a and b and float(b['us_per_op']) > 0 else '-')
    out.append(f'| {label} | ' + ' | '.join(cells) + ' |')
out += ['', '| bytes per entry beyond key, value and tag strings (2 tags, a namespace) | ' +
        ' | '.join(f'{n:,}' for n in sizes) + ' |', '|---|' + '---:|' * len(sizes)]
for s, label in (('bytes_per_entry', 'in the DSA area: header, links, tag hashes, allocator rounding'),
                 ('fixed_per_entry', 'the fixed part (buckets, index heads, counters...) / entries')):
    out.append(f'| {label} | ' + ' | '.join(v[(n, s)]['us_per_op'] if (n, s) in v else '-' for n in sizes) + ' |')
out.append('')
open(md, 'w').write('\n'.join(out) + '\n')
print('\n'.join(out))
PY
exit
}
