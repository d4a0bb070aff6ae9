#!/usr/bin/env bash
# The cost of the security model (issue 9), measured A/B in one run:
#
#   bash bench/security.sh [BASE]     BASE: the commit to compare with [85fe9f9, before issue 9]
#
# Builds BASE and this working tree, each into its own relocated copy of Debian's
# PostgreSQL 15 (so nothing is installed system-wide and no other run is disturbed),
# starts one cluster for each on 127.0.0.1 (ports SEC_PORT and SEC_PORT+1), loads the
# bench's products table (100 categories) and two roles that may read it, stores the
# per-category aggregate with qcache_fetch as the first role, then runs pgbench
# (prepared, T seconds) on the qcache_fetch hit of that aggregate (bench/qcache/scripts/
# qcache_fetch_agg.sql), alternating base and new, R rounds, at each client count:
#   - new / base, first role: the target is >= 0.95 (a hit stays within 5%);
#   - new, second role / first role: the second role shares the first one's entry;
#     the target is a cost of at most 1.1x, i.e. a TPS ratio >= 0.909.
# Medians over the rounds; the report goes to bench/results/security-<UTC date>.md.
# Knobs: T [3] R [5] CLIENTS ["1 8"] SEC_PORT [25471] ROWS [100000]
set -Eeuo pipefail
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BASE=${1:-85fe9f9}
T=${T:-3}
R=${R:-5}
CLIENTS=${CLIENTS:-"1 8"}
PORT=${SEC_PORT:-25471}
ROWS=${ROWS:-100000}
AB_NAME=security
. "$HERE/ab_lib.sh"
ab_setup

# start <side> <port>
start() {
	local side=$1 port=$2 bin="$W/$1/root/usr/lib/postgresql/15/bin"
	ab_start "$side" "$port"
	runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 <<EOF >/dev/null
CREATE EXTENSION qcache;
CREATE TABLE products (id int PRIMARY KEY, category_id int NOT NULL, price numeric NOT NULL);
INSERT INTO products SELECT g, g % 100, (g % 997) / 10.0 FROM generate_series(1, $ROWS) g;
ANALYZE products;
CREATE ROLE bench_r1 LOGIN;
CREATE ROLE bench_r2 LOGIN;
GRANT SELECT ON products TO bench_r1, bench_r2;
DO \$\$ BEGIN EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO bench_r1, bench_r2', (SELECT oid::regprocedure FROM pg_proc WHERE proname = 'qcache_fetch')); END \$\$;
EOF
	runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$port" -U bench_r1 -d postgres -qAt \
		-c "SELECT jsonb_array_length(qcache_fetch('agg', 'SELECT category_id, count(*), avg(price) FROM products GROUP BY category_id ORDER BY category_id', 0))" >/dev/null
}
start base "$PORT"
start new $((PORT + 1))

SCRIPT="$HERE/qcache/scripts/qcache_fetch_agg.sql"
# tps <side> <port> <role> <clients>
tps() {
	local bin="$W/$1/root/usr/lib/postgresql/15/bin"
	runuser -u postgres -- "$bin/pgbench" -h 127.0.0.1 -p "$2" -U "$3" -n -M prepared \
		-T "$T" -c "$4" -j $(($4 < 2 ? $4 : 2)) -f "$SCRIPT" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
# warm both up
for c in $CLIENTS; do tps base "$PORT" bench_r1 "$c" >/dev/null; tps new $((PORT + 1)) bench_r1 "$c" >/dev/null; done

declare -A S
for c in $CLIENTS; do
	for r in $(seq 1 "$R"); do
		S[base,$c]+="$(tps base "$PORT" bench_r1 "$c") "
		S[new,$c]+="$(tps new $((PORT + 1)) bench_r1 "$c") "
		S[new2,$c]+="$(tps new $((PORT + 1)) bench_r2 "$c") "
		log "c=$c round $r: base $(echo ${S[base,$c]} | awk "{print \$NF}") new $(echo ${S[new,$c]} | awk "{print \$NF}") second role $(echo ${S[new2,$c]} | awk "{print \$NF}")"
	done
done
# In-SQL: microseconds per hit over 20,000 calls in one statement (no
# network): the same comparison without pgbench's noise.
AGG="SELECT category_id, count(*), avg(price) FROM products GROUP BY category_id ORDER BY category_id"
usql() {
	runuser -u postgres -- "$W/$1/root/usr/lib/postgresql/15/bin/psql" -h 127.0.0.1 -p "$2" -U "$3" \
		-d postgres -qAtX <<EOF | tail -1
SELECT clock_timestamp() AS t0 \\gset
SELECT count(qcache_fetch('agg', '$AGG', 0)) FROM generate_series(1, 20000);
SELECT round((extract(epoch FROM clock_timestamp() - :'t0') * 1e6 / 20000)::numeric, 2);
EOF
}
declare -A U
for r in $(seq 1 "$R"); do
	U[base]+="$(usql base "$PORT" bench_r1) "
	U[new]+="$(usql new $((PORT + 1)) bench_r1) "
	U[new2]+="$(usql new $((PORT + 1)) bench_r2) "
done

# the second role's hits must be hits (served its first role's entry)
hits=$(runuser -u postgres -- "$W/new/root/usr/lib/postgresql/15/bin/psql" -h 127.0.0.1 -p $((PORT + 1)) -U postgres -d postgres -qAt -c "SELECT misses FROM qcache_stats")

med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
out="$HERE/results/security-$(date -u +%F).md"
mkdir -p "$HERE/results"
{
	echo "# Security model cost (issue 9), $(date -u '+%F %H:%M') UTC"
	echo
	echo "\`bash bench/security.sh $BASE\` (T=${T}s, R=$R rounds alternating, medians; pgbench -M prepared,"
	echo "qcache_fetch hit of the per-category aggregate over $ROWS products). Base: $BASE; new: $(git -C "$REPO" describe --always --dirty)."
	echo "Misses on the new cluster during the whole run: $hits (1 is the initial fill: every pgbench call was a hit)."
	echo
	echo "| clients | base tps | new tps | new/base (target >= 0.95) | second role tps | second/first (target >= 0.909) |"
	echo "|---:|---:|---:|---:|---:|---:|"
	for c in $CLIENTS; do
		b=$(echo "${S[base,$c]}" | med); n=$(echo "${S[new,$c]}" | med); n2=$(echo "${S[new2,$c]}" | med)
		printf '| %s | %.0f | %.0f | %.3f | %.0f | %.3f |\n' "$c" "$b" "$n" \
			"$(echo "$n / $b" | bc -l)" "$n2" "$(echo "$n2 / $n" | bc -l)"
	done
	ub=$(echo "${U[base]}" | med); un=$(echo "${U[new]}" | med); u2=$(echo "${U[new2]}" | med)
	echo
	echo "In-SQL, microseconds per hit (20,000 calls in one statement, median of $R): base $ub,"
	echo "new $un (new/base cost $(echo "scale=3; $un / $ub" | bc -l)), second role $u2"
	echo "(second/first cost $(echo "scale=3; $u2 / $un" | bc -l)); samples: base ${U[base]}; new ${U[new]}; second role ${U[new2]}."
	echo
	echo "Raw samples (tps):"
	for c in $CLIENTS; do
		echo "- c=$c base: ${S[base,$c]}; new: ${S[new,$c]}; new, second role: ${S[new2,$c]}"
	done
} | tee "$out"
log "report: $out"
}
