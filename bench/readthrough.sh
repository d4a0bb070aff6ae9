#!/usr/bin/env bash
# The read-through of issue 13, measured in one run on one cluster:
#
#   bash bench/readthrough.sh
#
# Builds this working tree into a relocated copy of Debian's PostgreSQL 15
# (nothing is installed system-wide), starts a cluster on 127.0.0.1:RT_PORT
# with qcache, loads items (10,000 rows) and products (100 categories), and
# runs pgbench (prepared, T seconds, R rounds alternating the cases, medians):
#   fixed     a qcache_fetch hit of one primary-key row, one fixed query text
#   params    the same with $1 over 10,000 distinct values (all cached)
#   format    today's pattern: format('... %L', id) over 1,000 texts (cached)
#   rows      qcache_fetch_rows(NULL::agg_row, ...) hit of the aggregate
#   populate  jsonb_populate_recordset(NULL::agg_row, qcache_fetch(...)) hit
#   hit8 / swr8   8 clients: a hit of a 20 ms query (ttl 0), and the same
#             query with ttl 1 s and stale_ttl 60 s, so that every second one
#             session recomputes it; latency p99 from pgbench's per-
#             transaction log
# Targets: params/fixed >= 0.9; params/format >= 5; rows/populate >= 1;
# p99(swr8) <= 2 x p99(hit8).  The report goes to
# bench/results/readthrough-<UTC date>.md.
# Knobs: T [3] R [3] RT_PORT [25491]
set -Eeuo pipefail
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
T=${T:-3}
R=${R:-3}
PORT=${RT_PORT:-25491}
PGC=/usr/lib/postgresql/15/bin/pg_config
W=$(mktemp -d /tmp/qcache-rtbench.XXXXXX)
chmod 755 "$W"
log() { printf '[%(%H:%M:%S)T] readthrough bench: %s\n' -1 "$*" >&2; }
cleanup() {
	[ -f "$W/data/postmaster.pid" ] && kill -INT "$(head -1 "$W/data/postmaster.pid")" 2>/dev/null || true
	sleep 1
	rm -rf "$W"
}
trap cleanup EXIT

need=(postgresql-15 postgresql-server-dev-15 libhiredis-dev make gcc bc)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

root="$W/root"
mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$W/src"
cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=bench/results -cf - . | tar -C "$W/src" -xf -
make -s -C "$W/src" PG_CONFIG=$PGC >/dev/null
make -s -C "$W/src" PG_CONFIG=$PGC DESTDIR="$root" install >/dev/null
BIN="$root/usr/lib/postgresql/15/bin"
chown -R postgres:postgres "$W"
runuser -u postgres -- "$BIN/initdb" -D "$W/data" -A trust -U postgres >/dev/null
cat >>"$W/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$W'
shared_preload_libraries = 'qcache'
shared_buffers = 128MB
max_connections = 50
EOF
runuser -u postgres -- "$BIN/pg_ctl" -D "$W/data" -l "$W/log" -w start >/dev/null ||
	{ cat "$W/log"; exit 1; }
PSQL=(runuser -u postgres -- "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
"${PSQL[@]}" <<'EOF' >/dev/null
CREATE EXTENSION qcache;
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
INSERT INTO items SELECT g, 'item ' || g, g / 10.0 FROM generate_series(1, 10000) g;
CREATE TABLE products (id int PRIMARY KEY, category_id int NOT NULL, price numeric NOT NULL);
INSERT INTO products SELECT g, g % 100, (g % 997) / 10.0 FROM generate_series(1, 100000) g;
ANALYZE;
CREATE TYPE agg_row AS (category_id int, n bigint, avg numeric);
CREATE FUNCTION slow20() RETURNS int LANGUAGE sql AS 'SELECT 1 FROM pg_sleep(0.02)';
-- fill: every case below only hits (but swr8, by design)
SELECT count(qcache_fetch(NULL, 'SELECT * FROM items WHERE id = $1', 0, params => ARRAY[g::text]))
FROM generate_series(1, 10000) g;
SELECT count(qcache_fetch('pk:' || g, format('SELECT * FROM items WHERE id = %L', g), 0))
FROM generate_series(1, 1000) g;
SELECT qcache_fetch('pk', 'SELECT * FROM items WHERE id = 1', 0);
SELECT qcache_fetch('agg', 'SELECT category_id, count(*) AS n, avg(price) AS avg FROM products GROUP BY 1 ORDER BY 1', 0);
SELECT qcache_fetch('slow', 'SELECT id, slow20() FROM items WHERE id = 1', 0);
EOF

S="$W/scripts"
mkdir -p "$S"
echo "SELECT qcache_fetch('pk', 'SELECT * FROM items WHERE id = 1', 0);" >"$S/fixed.sql"
printf '%s\n' '\set id random(1, 10000)' \
	"SELECT qcache_fetch(NULL, 'SELECT * FROM items WHERE id = \$1', 0, params => ARRAY[:id::text]);" >"$S/params.sql"
printf '%s\n' '\set id random(1, 1000)' \
	"SELECT qcache_fetch('pk:' || :id::int, format('SELECT * FROM items WHERE id = %L', :id::int), 0);" >"$S/format.sql"
echo "SELECT * FROM qcache_fetch_rows(NULL::agg_row, 'agg', 'SELECT category_id, count(*) AS n, avg(price) AS avg FROM products GROUP BY 1 ORDER BY 1', 0);" >"$S/rows.sql"
echo "SELECT * FROM jsonb_populate_recordset(NULL::agg_row, qcache_fetch('agg', 'SELECT category_id, count(*) AS n, avg(price) AS avg FROM products GROUP BY 1 ORDER BY 1', 0));" >"$S/populate.sql"
echo "SELECT qcache_fetch('slow', 'SELECT id, slow20() FROM items WHERE id = 1', 0);" >"$S/hit8.sql"
echo "SELECT qcache_fetch('swr', 'SELECT id, slow20() FROM items WHERE id = 1', 1, stale_ttl => 60);" >"$S/swr8.sql"
chown -R postgres:postgres "$S"

# tps <case> <clients>
tps() {
	runuser -u postgres -- "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared \
		-T "$T" -c "$2" -j $(($2 < 2 ? $2 : 2)) -f "$S/$1.sql" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
# p99 <case>: 8 clients, latency p99 in ms from the per-transaction log
p99() {
	local d="$W/log-$1"
	rm -rf "$d"
	mkdir -p "$d"
	chown postgres "$d"
	(cd "$d" && runuser -u postgres -- "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared \
		-T "$T" -c 8 -j 2 -l -f "$S/$1.sql" postgres >/dev/null 2>&1)
	cat "$d"/pgbench_log.* | awk '{print $3}' | sort -n |
		awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", a[i]/1000}'
}
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A X
for c in fixed params format rows populate; do tps "$c" 1 >/dev/null; done
for r in $(seq 1 "$R"); do
	for c in fixed params format rows populate; do
		X[$c]+="$(tps "$c" 1) "
	done
	X[hit8]+="$(p99 hit8) "
	X[swr8]+="$(p99 swr8) "
	log "round $r: $(for c in fixed params format rows populate hit8 swr8; do printf '%s=%s ' "$c" "$(echo ${X[$c]} | awk '{print $NF}')"; done)"
done
misses=$("${PSQL[@]}" -c "SELECT misses FROM qcache_stats")

# In-SQL: microseconds per hit over 20,000 calls in one statement (no
# network, no pgbench), the median of R runs of each.
usql() {
	"${PSQL[@]}" <<EOF | tail -1
SELECT clock_timestamp() AS t0 \gset
SELECT count($1) FROM generate_series(1, 20000) g;
SELECT round((extract(epoch FROM clock_timestamp() - :'t0') * 1e6 / 20000)::numeric, 2);
EOF
}
declare -A U
for r in $(seq 1 "$R"); do
	U[fixed]+="$(usql "qcache_fetch('pk', 'SELECT * FROM items WHERE id = 1', 0)") "
	U[params]+="$(usql "qcache_fetch(NULL, 'SELECT * FROM items WHERE id = \$1', 0, params => ARRAY[(1 + g % 10000)::text])") "
	U[format]+="$(usql "qcache_fetch('pk:' || (1 + g % 1000), format('SELECT * FROM items WHERE id = %L', 1 + g % 1000), 0)") "
done

out="$HERE/results/readthrough-$(date -u +%F).md"
mkdir -p "$HERE/results"
ratio() { echo "scale=3; $1 / $2" | bc -l; }
fixed=$(echo "${X[fixed]}" | med); params=$(echo "${X[params]}" | med); format=$(echo "${X[format]}" | med)
rows=$(echo "${X[rows]}" | med); populate=$(echo "${X[populate]}" | med)
hit8=$(echo "${X[hit8]}" | med); swr8=$(echo "${X[swr8]}" | med)
{
	echo "# Read-through (issue 13), $(date -u '+%F %H:%M') UTC"
	echo
	echo "\`bash bench/readthrough.sh\` (T=${T}s, R=$R rounds, medians; pgbench -M prepared, 1 client unless said)."
	echo "Build: $(git -C "$REPO" describe --always --dirty). Misses during the run (the swr8 refreshes): $misses."
	echo
	echo "| case | result | target |"
	echo "|---|---:|---|"
	printf '| fixed text, PK hit | %.0f tps | |\n' "$fixed"
	printf '| \$1 over 10,000 values, PK hit | %.0f tps = %s x fixed | >= 0.9 |\n' "$params" "$(ratio "$params" "$fixed")"
	printf "| format('%%L') over 1,000 texts, hit | %.0f tps; params = %s x this | >= 5 |\n" "$format" "$(ratio "$params" "$format")"
	printf '| qcache_fetch_rows, aggregate hit | %.0f tps = %s x populate | >= 1 |\n' "$rows" "$(ratio "$rows" "$populate")"
	printf '| jsonb_populate_recordset(qcache_fetch), aggregate hit | %.0f tps | |\n' "$populate"
	uf=$(echo "${U[fixed]}" | med); up=$(echo "${U[params]}" | med); uo=$(echo "${U[format]}" | med)
	printf '| in-SQL, fixed text, PK hit | %s us | |\n' "$uf"
	printf '| in-SQL, \$1 over 10,000 values | %s us = %s x fixed | <= 1.1 |\n' "$up" "$(ratio "$up" "$uf")"
	printf "| in-SQL, format('%%L') over 1,000 texts | %s us = %s x params | >= 5 |\n" "$uo" "$(ratio "$uo" "$up")"
	printf '| 8 clients, hit of a 20 ms query: p99 | %s ms | |\n' "$hit8"
	printf '| 8 clients, ttl 1 s + stale_ttl: p99 | %s ms = %s x hit | <= 2 |\n' "$swr8" "$(ratio "$swr8" "$hit8")"
	echo
	echo "Raw samples: $(for c in fixed params format rows populate hit8 swr8; do printf '%s: %s; ' "$c" "${X[$c]}"; done)"
	echo "In-SQL samples (us): $(for c in fixed params format; do printf '%s: %s; ' "$c" "${U[$c]}"; done)"
} | tee "$out"
log "report: $out"
}
