#!/usr/bin/env bash
# Hot standbys with invalidations in the WAL (issue 15), measured in one run:
#
#   bash bench/standby.sh
#
# Builds this working tree into a relocated copy of Debian's PostgreSQL 15
# (nothing is installed system-wide), starts a primary on 127.0.0.1:SB_PORT
# and a streaming standby on SB_PORT+1, both with qcache, and measures:
#   wal     WAL bytes per watched single-row UPDATE (pg_current_wal_lsn()
#           over N_UPD UPDATEs, one per transaction), with
#           qcache.wal_invalidation off and on (a primary restart between)
#   hit     a qcache_fetch hit of an aggregate, prepared, c=1 and c=8, on
#           the primary and on the standby, R rounds alternating, medians
#   replay  replay rate of a pgbench-style write load (pgbench's TPC-B-like
#           transactions on watched tables, N_TX of them) generated while
#           the standby's replay is paused, then timed from resume until
#           the standby has replayed it all: transactions per second,
#           setting off and on, R rounds alternating, medians
# Targets: standby hit / primary hit >= 0.9; replay rate on / off >= 0.95.
# The report goes to bench/results/standby-<UTC date>.md.
# Knobs: T [3] R [3] N_UPD [10000] N_TX [20000] SB_PORT [25591]
set -Eeuo pipefail
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
T=${T:-3}
R=${R:-3}
N_UPD=${N_UPD:-10000}
N_TX=${N_TX:-20000}
PORT=${SB_PORT:-25591}
SPORT=$((PORT + 1))
AB_NAME=standby
# shellcheck source=bench/ab_lib.sh
. "$HERE/ab_lib.sh"
one_setup
AB_DATA_DIRS="$W/standby $W/primary"	# ab_cleanup stops them by pid
BIN="$W/new/root/usr/lib/postgresql/15/bin"
as_pg() { runuser -u postgres -- "$@"; }

as_pg "$BIN/initdb" -D "$W/primary" -A trust -U postgres >/dev/null
cat >>"$W/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$W'
shared_preload_libraries = 'qcache'
shared_buffers = 128MB
max_connections = 50
wal_level = replica
max_wal_senders = 4
max_wal_size = 4GB
checkpoint_timeout = 30min
autovacuum = off
qcache.wal_invalidation = off
EOF
echo "host replication postgres 127.0.0.1/32 trust" >>"$W/primary/pg_hba.conf"
as_pg "$BIN/pg_ctl" -D "$W/primary" -l "$W/primary.log" -w start >/dev/null ||
	{ cat "$W/primary.log"; exit 1; }
P=(runuser -u postgres -- "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
S=(runuser -u postgres -- "$BIN/psql" -h 127.0.0.1 -p "$SPORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
"${P[@]}" <<'EOF' >/dev/null
CREATE EXTENSION qcache;
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items SELECT g, 0 FROM generate_series(1, 1000) g;
SELECT qcache_watch('items', 'item:{id}');
CREATE TABLE products (id int PRIMARY KEY, category_id int NOT NULL, price numeric NOT NULL);
INSERT INTO products SELECT g, g % 100, (g % 997) / 10.0 FROM generate_series(1, 100000) g;
SELECT qcache_watch('products', 'category:{category_id}');
ANALYZE;
EOF
as_pg "$BIN/pgbench" -i -q -s 4 -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null 2>&1
"${P[@]}" <<'EOF' >/dev/null
SELECT qcache_watch('pgbench_accounts', 'account:{aid}');
SELECT qcache_watch('pgbench_tellers', 'teller:{tid}');
SELECT qcache_watch('pgbench_branches', 'branch:{bid}');
SELECT qcache_watch('pgbench_history');
EOF

as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$W/standby" -R -X stream -c fast >/dev/null
cat >>"$W/standby/postgresql.conf" <<EOF
port = $SPORT
hot_standby = on
# the replay timer below polls from inside one statement: no cancellation
hot_standby_feedback = on
max_standby_streaming_delay = -1
EOF
as_pg "$BIN/pg_ctl" -D "$W/standby" -l "$W/standby.log" -w start >/dev/null ||
	{ cat "$W/standby.log"; exit 1; }

catchup() {
	local target
	target=$("${P[@]}" -c 'SELECT pg_current_wal_lsn()')
	for _ in $(seq 1 1000); do
		[ "$("${S[@]}" -c "SELECT pg_last_wal_replay_lsn() >= '$target'")" = t ] && return 0
		sleep 0.02
	done
	log "the standby did not catch up"; tail -20 "$W/standby.log" >&2; exit 1
}
set_wal() {
	sed -i "s/^qcache.wal_invalidation = .*/qcache.wal_invalidation = $1/" "$W/primary/postgresql.conf"
	as_pg "$BIN/pg_ctl" -D "$W/primary" -l "$W/primary.log" -w restart >/dev/null
	if [ "$1" = on ]; then
		for _ in $(seq 1 200); do
			"${P[@]}" -c CHECKPOINT
			sleep 1.2
			catchup
			[ "$("${S[@]}" -c 'SELECT qcache_wal_status()')" = hearing ] && return 0
		done
		log "the standby does not hear the primary"; exit 1
	fi
	catchup
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

cat >"$W/upd.sql" <<'EOF'
\set id random(1, 1000)
UPDATE items SET v = v + 1 WHERE id = :id;
EOF
cat >"$W/hit.sql" <<'EOF'
SELECT qcache_fetch('agg', 'SELECT category_id, count(*) AS n, avg(price) AS avg FROM products GROUP BY category_id ORDER BY category_id', 0);
EOF
chmod 644 "$W"/*.sql

# ---------- WAL bytes per watched UPDATE ----------
declare -A walb
for mode in off on; do
	set_wal $mode
	# full-page images after the checkpoint would weigh on the first mode run
	"${P[@]}" -c CHECKPOINT
	as_pg "$BIN/pgbench" -n -c 1 -t 2000 -f "$W/upd.sql" -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null
	a=$("${P[@]}" -c 'SELECT pg_current_wal_lsn()')
	as_pg "$BIN/pgbench" -n -c 1 -t "$N_UPD" -f "$W/upd.sql" -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null
	b=$("${P[@]}" -c 'SELECT pg_current_wal_lsn()')
	walb[$mode]=$("${P[@]}" -c "SELECT round(pg_wal_lsn_diff('$b', '$a') / $N_UPD.0, 1)")
	log "WAL per watched UPDATE, setting $mode: ${walb[$mode]} bytes"
done
catchup

# ---------- fetch hits: primary and standby ----------
"${P[@]}" -c "$(cat "$W/hit.sql")" >/dev/null
"${S[@]}" -c "$(cat "$W/hit.sql")" >/dev/null
"${S[@]}" -c "$(cat "$W/hit.sql")" >/dev/null
hits_s=$("${S[@]}" -c 'SELECT hits FROM qcache_stats')
declare -A tps
for c in 1 8; do
	for r in $(seq 1 "$R"); do
		for node in primary standby; do
			port=$PORT; [ $node = standby ] && port=$SPORT
			t=$(as_pg "$BIN/pgbench" -n -M prepared -c $c -j $c -T "$T" -f "$W/hit.sql" \
				-h 127.0.0.1 -p $port -U postgres postgres 2>/dev/null |
				sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
			tps[$node.$c]+="$t "
		done
	done
done
hits_s2=$("${S[@]}" -c 'SELECT hits FROM qcache_stats')
[ "$hits_s2" -gt "$hits_s" ] || { log "the standby served no hit"; exit 1; }
for k in primary.1 standby.1 primary.8 standby.8; do
	tps[$k]=$(tr ' ' '\n' <<<"${tps[$k]}" | grep . | median)
done
ratio1=$(echo "scale=3; ${tps[standby.1]} / ${tps[primary.1]}" | bc)
ratio8=$(echo "scale=3; ${tps[standby.8]} / ${tps[primary.8]}" | bc)
log "fetch hit tps c=1: primary ${tps[primary.1]} standby ${tps[standby.1]} ($ratio1); c=8: ${tps[primary.8]} ${tps[standby.8]} ($ratio8)"

# ---------- replay rate ----------
declare -A rep cpu_us rep_all cpu_all
# a round of the load first, unmeasured: the standby reads the tables once
as_pg "$BIN/pgbench" -n -c 4 -j 2 -t $((N_TX / 4)) -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null 2>&1
catchup
for r in $(seq 1 "$R"); do
	for mode in off on; do
		set_wal $mode
		"${S[@]}" -c 'SELECT pg_wal_replay_pause()' >/dev/null
		as_pg "$BIN/pgbench" -n -c 4 -j 2 -t $((N_TX / 4)) -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null 2>&1
		target=$("${P[@]}" -c 'SELECT pg_current_wal_lsn()')
		# wait for the WAL to be on the standby before timing its replay
		for _ in $(seq 1 3000); do
			[ "$("${S[@]}" -c "SELECT pg_last_wal_receive_lsn() >= '$target'")" = t ] && break
			sleep 0.02
		done
		# resume and time the replay inside the standby, polling every 0.5 ms
		cat >"$W/replay.sql" <<SQL
SELECT pg_wal_replay_resume();
SELECT clock_timestamp() AS t0 \gset
DO \$\$ BEGIN
	WHILE pg_last_wal_replay_lsn() < '$target' LOOP PERFORM pg_sleep(0.0005); END LOOP;
END \$\$;
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SQL
		chmod 644 "$W/replay.sql"
		# and the startup process's CPU time over the same replay (ticks)
		spid=$("${S[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'")
		c0=$(awk '{print $14 + $15}' "/proc/$spid/stat")
		secs=$("${S[@]}" -f "$W/replay.sql" | tail -1)
		c1=$(awk '{print $14 + $15}' "/proc/$spid/stat")
		rate=$(echo "scale=1; $N_TX / $secs" | bc)
		cpu=$(echo "scale=3; ($c1 - $c0) / $(getconf CLK_TCK) * 1000000 / $N_TX" | bc)
		rep[$mode]+="$rate "
		cpu_us[$mode]+="$cpu "
		log "replay, setting $mode, round $r: $rate transactions/s, startup process CPU $cpu us per transaction"
	done
done
for m in off on; do
	rep_all[$m]=${rep[$m]}
	cpu_all[$m]=${cpu_us[$m]}
	rep[$m]=$(tr ' ' '\n' <<<"${rep[$m]}" | grep . | median)
	cpu_us[$m]=$(tr ' ' '\n' <<<"${cpu_us[$m]}" | grep . | median)
done
rratio=$(echo "scale=3; ${rep[on]} / ${rep[off]}" | bc)
cratio=$(echo "scale=3; ${cpu_us[off]} / ${cpu_us[on]}" | bc)

date=$(date -u +%F)
out="$REPO/bench/results/standby-$date.md"
mkdir -p "$REPO/bench/results"
{
	echo "# Hot standbys with invalidations in the WAL ($(date -u '+%F %H:%M UTC'))"
	echo
	echo "\`T=$T R=$R N_UPD=$N_UPD N_TX=$N_TX bash bench/standby.sh\`, load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores."
	echo
	echo "| measure | setting off | setting on | ratio / difference |"
	echo "|---|---:|---:|---:|"
	echo "| WAL bytes per watched UPDATE | ${walb[off]} | ${walb[on]} | +$(echo "${walb[on]} - ${walb[off]}" | bc) |"
	echo "| replay, pgbench TPC-B-like on watched tables (tx/s, wall, median) | ${rep[off]} | ${rep[on]} | $rratio |"
	echo "| the same, startup process CPU per transaction (µs, median; ratio off/on) | ${cpu_us[off]} | ${cpu_us[on]} | $cratio |"
	echo
	echo "Every round (tx/s): off ${rep_all[off]}; on ${rep_all[on]}. CPU µs per transaction: off ${cpu_all[off]}; on ${cpu_all[on]}."
	echo
	echo "| fetch hit of the aggregate, prepared (tps) | primary | standby | standby / primary |"
	echo "|---|---:|---:|---:|"
	echo "| c=1 | ${tps[primary.1]} | ${tps[standby.1]} | $ratio1 |"
	echo "| c=8 | ${tps[primary.8]} | ${tps[standby.8]} | $ratio8 |"
} >"$out"
cat "$out"
}
