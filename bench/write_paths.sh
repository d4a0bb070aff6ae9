#!/usr/bin/env bash
# The cost of issue 10's write paths, measured side by side in one run:
#
#   bash bench/write_paths.sh        (as root, Debian 12; about 2 minutes)
#
# 1. A watched UPDATE against a plain UPDATE: one PostgreSQL with qcache
#    preloaded, two tables of 10,000 rows, one with qcache_watch (and 100
#    qcache_fetch entries over it), pgbench -M prepared UPDATE of one random
#    row, ROUNDS rounds of T seconds at CLIENTS clients, plain and watched
#    alternating so that both sides of a round's ratio are measured seconds
#    apart.  The target is a median ratio >= 0.9.
# 2. The DDL hook on pgbench -i style DDL (pgbench -i -I dtpf: drop, create
#    the four tables, primary and foreign keys, no data): two PostgreSQL
#    instances, one with qcache preloaded and the extension created, one
#    without qcache, DDL_ROUNDS rounds alternating; the median wall time of
#    each and their ratio (within noise means close to 1).
#
# It builds and installs qcache from this tree (the machine-wide lock
# /tmp/qcache-bench.lock is held, as test/run.sh and bench/run.sh do), and
# stops every server it started.  Both clusters run with fsync and
# synchronous_commit off, as bench/peers/run.sh does.  Knobs: T [3]
# ROUNDS [10] CLIENTS [2] DDL_ROUNDS [25] PORT_A [25471] PORT_B [25472] BASE [/tmp/qcache-bench-wp].
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
T=${T:-3}
ROUNDS=${ROUNDS:-10}
CLIENTS=${CLIENTS:-2}
DDL_ROUNDS=${DDL_ROUNDS:-25}
PORT_A=${PORT_A:-25471}
PORT_B=${PORT_B:-25472}
BASE=${BASE:-/tmp/qcache-bench-wp}

exec 9>/tmp/qcache-bench.lock
if ! flock -n 9; then
	echo "bench/write_paths.sh: waiting for /tmp/qcache-bench.lock" >&2
	flock -w 3600 9
fi

rm -rf "$BASE"
mkdir -p "$BASE/src"
tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=bench/results -cf - . | tar -C "$BASE/src" -xf -
make -C "$BASE/src" -s -j2 PG_CONFIG=$PGBIN/pg_config >/dev/null
make -C "$BASE/src" -s PG_CONFIG=$PGBIN/pg_config install >/dev/null
chown -R postgres:postgres "$BASE"

as_pg() { runuser -u postgres -- "$@"; }
pids=()
cleanup() {
	for d in "$BASE/a" "$BASE/b"; do
		[ -f "$d/postmaster.pid" ] && as_pg $PGBIN/pg_ctl -D "$d" -m fast stop >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

start() {	# dir port preload
	as_pg $PGBIN/initdb -D "$1" -A trust >/dev/null
	{
		echo "port = $2"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$BASE'"
		echo "max_prepared_transactions = 4"
		# a scratch cluster, as bench/peers/run.sh: commits measure CPU, not fsync
		echo "fsync = off"
		echo "synchronous_commit = off"
		[ "$3" = yes ] && echo "shared_preload_libraries = 'qcache'"
	} >>"$1/postgresql.conf"
	as_pg $PGBIN/pg_ctl -D "$1" -l "$1/log" -w start >/dev/null
}
start "$BASE/a" $PORT_A yes
start "$BASE/b" $PORT_B no
psql_a() { as_pg $PGBIN/psql -h "$BASE" -p $PORT_A -d postgres -XAtq "$@"; }
psql_b() { as_pg $PGBIN/psql -h "$BASE" -p $PORT_B -d postgres -XAtq "$@"; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# ---------- 1. watched UPDATE against plain UPDATE
psql_a <<'EOF'
CREATE EXTENSION qcache;
CREATE TABLE upd_plain (id int PRIMARY KEY, v int NOT NULL) WITH (fillfactor = 50);
CREATE TABLE upd_watched (id int PRIMARY KEY, v int NOT NULL) WITH (fillfactor = 50);
INSERT INTO upd_plain SELECT i, 0 FROM generate_series(1, 10000) i;
INSERT INTO upd_watched SELECT * FROM upd_plain;
VACUUM ANALYZE upd_plain;
VACUUM ANALYZE upd_watched;
SELECT qcache_watch('upd_watched');
SELECT count(qcache_fetch('f' || g, 'SELECT v FROM upd_watched WHERE id = ' || g, 0))
FROM generate_series(1, 100) g;
EOF
echo '\set id random(1, 10000)
UPDATE upd_plain SET v = v + 1 WHERE id = :id;' >"$BASE/plain.sql"
echo '\set id random(1, 10000)
UPDATE upd_watched SET v = v + 1 WHERE id = :id;' >"$BASE/watched.sql"
chown postgres "$BASE"/*.sql
tps() {
	as_pg $PGBIN/pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$T" \
		-h "$BASE" -p $PORT_A -f "$1" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
ratios=()
echo "watched UPDATE vs plain UPDATE: $ROUNDS rounds of $T s at $CLIENTS clients"
for r in $(seq 1 "$ROUNDS"); do
	# alternate which side goes first, so that drift favours neither
	if [ $((r % 2)) = 1 ]; then
		p=$(tps "$BASE/plain.sql")
		w=$(tps "$BASE/watched.sql")
	else
		w=$(tps "$BASE/watched.sql")
		p=$(tps "$BASE/plain.sql")
	fi
	ratio=$(awk -v w="$w" -v p="$p" 'BEGIN {printf "%.3f", w / p}')
	ratios+=("$ratio")
	echo "  round $r: plain $p tps, watched $w tps, ratio $ratio"
done
echo "  median ratio watched/plain: $(printf '%s\n' "${ratios[@]}" | median)"

# ---------- 2. the DDL hook on pgbench -i style DDL
psql_a -c 'SELECT 1' >/dev/null
ddl() {	# port
	local t0 t1
	t0=$(date +%s%N)
	as_pg $PGBIN/pgbench -i -I dtpf -h "$BASE" -p "$1" postgres >/dev/null 2>&1
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}
ddl $PORT_A >/dev/null
ddl $PORT_B >/dev/null
with=()
without=()
echo "pgbench -i -I dtpf (DDL only): $DDL_ROUNDS rounds, with qcache (hook active) and without"
for r in $(seq 1 "$DDL_ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then
		with+=("$(ddl $PORT_A)")
		without+=("$(ddl $PORT_B)")
	else
		without+=("$(ddl $PORT_B)")
		with+=("$(ddl $PORT_A)")
	fi
done
mw=$(printf '%s\n' "${with[@]}" | median)
mo=$(printf '%s\n' "${without[@]}" | median)
echo "  with qcache:    median $mw us  (all: ${with[*]})"
echo "  without qcache: median $mo us  (all: ${without[*]})"
echo "  ratio with/without: $(awk -v a="$mw" -v b="$mo" 'BEGIN {printf "%.3f", a / b}')"
