#!/usr/bin/env bash
# The cost of the per-namespace counters (issue 14) on a qcache_get hit,
# measured A/B in one run:
#
#   bash bench/namespaces.sh [BASE]     BASE: the commit to compare with [5d19019, before issue 14]
#
# Builds BASE and this working tree, each into its own relocated copy of Debian's
# PostgreSQL 15 (nothing is installed system-wide), starts one cluster for each on
# 127.0.0.1 (ports NS_PORT and NS_PORT+1), stores a 1 KB value under 'user:42', then
# runs pgbench (prepared, T seconds) on `SELECT qcache_get('user:42')`, alternating
# base and new, R rounds, at each client count; and, first, 3R alternating rounds of
# the time of 200,000 qcache_get hits inside one statement (the in-backend cost, without the
# client round trip).  Target: new/base >= 0.97 (a hit costs at most 3% more).
# The report gives medians and the best of the rounds (the best is what a shared,
# noisy machine disturbs least); it goes to bench/results/namespaces-<UTC date>.md.
# Knobs: T [3] R [5] CLIENTS ["1 8"] NS_PORT [25481]
set -Eeuo pipefail
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BASE=${1:-5d19019}
T=${T:-3}
R=${R:-5}
CLIENTS=${CLIENTS:-"1 8"}
PORT=${NS_PORT:-25481}
AB_NAME=namespaces
. "$HERE/ab_lib.sh"
ab_setup

# start <side> <port>
start() {
	local side=$1 port=$2 bin="$W/$1/root/usr/lib/postgresql/15/bin"
	ab_start "$side" "$port"
	runuser -u postgres -- "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 <<EOF >/dev/null
CREATE EXTENSION qcache;
SELECT qcache_set('user:42', to_jsonb(repeat('x', 1000)), 0);
EOF
}
start base "$PORT"
start new $((PORT + 1))

SCRIPT="$W/get.sql"
echo "SELECT qcache_get('user:42');" >"$SCRIPT"
chmod 644 "$SCRIPT"
# tps <side> <port> <clients>
tps() {
	local bin="$W/$1/root/usr/lib/postgresql/15/bin"
	runuser -u postgres -- "$bin/pgbench" -h 127.0.0.1 -p "$2" -U postgres -n -M prepared \
		-T "$T" -c "$3" -j $(($3 < 2 ? $3 : 2)) -f "$SCRIPT" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
for c in $CLIENTS; do tps base "$PORT" "$c" >/dev/null; tps new $((PORT + 1)) "$c" >/dev/null; done

# loop <side> <port>: ms for 200,000 hits in one statement
loop() {
	runuser -u postgres -- "$W/$1/root/usr/lib/postgresql/15/bin/psql" -h 127.0.0.1 -p "$2" -U postgres -d postgres -qAt -c \
		"SELECT extract(epoch FROM clock_timestamp() - now()) * 1000 FROM (SELECT count(qcache_get('user:42')) FROM generate_series(1, 200000)) s" |
		tail -1
}
declare -A S
for r in $(seq 1 $((3 * R))); do
	S[base,loop]+="$(loop base "$PORT") "
	S[new,loop]+="$(loop new $((PORT + 1))) "
	log "in-backend round $r: base $(echo ${S[base,loop]} | awk "{print \$NF}") ms new $(echo ${S[new,loop]} | awk "{print \$NF}") ms"
done
for c in $CLIENTS; do
	for r in $(seq 1 "$R"); do
		S[base,$c]+="$(tps base "$PORT" "$c") "
		S[new,$c]+="$(tps new $((PORT + 1)) "$c") "
		log "c=$c round $r: base $(echo ${S[base,$c]} | awk "{print \$NF}") new $(echo ${S[new,$c]} | awk "{print \$NF}")"
	done
done
# every call was a hit, and the new side counted them under 'user'
misses=$(runuser -u postgres -- "$W/new/root/usr/lib/postgresql/15/bin/psql" -h 127.0.0.1 -p $((PORT + 1)) -U postgres -d postgres -qAt -c "SELECT misses FROM qcache_stats")
nsrow=$(runuser -u postgres -- "$W/new/root/usr/lib/postgresql/15/bin/psql" -h 127.0.0.1 -p $((PORT + 1)) -U postgres -d postgres -qAt -c "SELECT namespace, hits, misses, sets, entries FROM qcache_namespaces")

best() { tr ' ' '\n' | grep . | sort -g | tail -1; }
least() { tr ' ' '\n' | grep . | sort -g | head -1; }
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
out="$HERE/results/namespaces-$(date -u +%F).md"
mkdir -p "$HERE/results"
{
	echo "# Per-namespace counters: cost of a qcache_get hit (issue 14), $(date -u '+%F %H:%M') UTC"
	echo
	echo "\`bash bench/namespaces.sh $BASE\` (T=${T}s, R=$R rounds alternating, medians; pgbench -M prepared,"
	echo "\`SELECT qcache_get('user:42')\` of a 1 KB value). Base: $BASE; new: $(git -C "$REPO" describe --always --dirty)."
	echo "Misses on the new cluster: $misses. Its qcache_namespaces row (namespace|hits|misses|sets|entries): $nsrow."
	echo
	echo "| clients | base tps (median / best) | new tps (median / best) | new/base, medians | new/base, best (target >= 0.97) |"
	echo "|---:|---:|---:|---:|---:|"
	for c in $CLIENTS; do
		b=$(echo "${S[base,$c]}" | med); n=$(echo "${S[new,$c]}" | med)
		bb=$(echo "${S[base,$c]}" | best); nb=$(echo "${S[new,$c]}" | best)
		printf '| %s | %.0f / %.0f | %.0f / %.0f | %.3f | %.3f |\n' "$c" "$b" "$bb" "$n" "$nb" \
			"$(echo "$n / $b" | bc -l)" "$(echo "$nb / $bb" | bc -l)"
	done
	b=$(echo "${S[base,loop]}" | med); n=$(echo "${S[new,loop]}" | med)
	bl=$(echo "${S[base,loop]}" | least); nl=$(echo "${S[new,loop]}" | least)
	echo
	echo "In one backend, 200,000 hits in one statement: base $b ms (least $bl), new $n ms (least $nl);"
	printf 'cost per hit, base %.3f us, new %.3f us; new/base time, medians %.3f, least %.3f (target <= 1.03).\n' \
		"$(echo "$bl * 1000 / 200000" | bc -l)" "$(echo "$nl * 1000 / 200000" | bc -l)" \
		"$(echo "$n / $b" | bc -l)" "$(echo "$nl / $bl" | bc -l)"
	echo
	echo "Raw samples (tps; ms):"
	for c in $CLIENTS; do
		echo "- c=$c base: ${S[base,$c]}; new: ${S[new,$c]}"
	done
	echo "- in-backend base: ${S[base,loop]}; new: ${S[new,loop]}"
	uptime
} | tee "$out"
log "report: $out"
}
