#!/usr/bin/env bash
# Issue 13's comparison with "today", measured A/B in one run:
#
#   bash bench/fetch_ab.sh [BASE]     BASE: the commit to compare with [85fe9f9, qcache 1.2]
#
# Builds BASE and this working tree, each into its own relocated copy of
# Debian's PostgreSQL 15 (bench/ab_lib.sh), starts one cluster for each on
# 127.0.0.1 (ports FA_PORT and FA_PORT+1), loads items (10,000 rows) and
# fills the cache, so that every case below only hits:
#   base format  1.2's pattern: qcache_fetch('pk:' || id, format('SELECT *
#                FROM items WHERE id = %L', id), 0) over 1,000 ids (1,000
#                texts: 1.2 keeps 64 accepted texts per backend, so a hit
#                parses its text)
#   base fixed   1.2, one fixed text: qcache_fetch('pk', 'SELECT * FROM
#                items WHERE id = 1', 0)
#   new params   this tree: qcache_fetch(NULL, 'SELECT * FROM items WHERE
#                id = $1', 0, params => ARRAY[id::text]) over 10,000 ids
#   new fixed    this tree, the fixed text
#   new format   this tree, the format() pattern over 1,000 texts
# Two measures, each R times, the sides alternating:
#   - in-SQL: one statement of N calls (generate_series), per call: the
#     backend's CPU time (/proc/self/schedstat, so that time the backend
#     spent descheduled on this shared machine does not count) and the wall
#     time; and the same loop without the call (the loop's own cost, for
#     the "net" figures);
#   - end to end: pgbench -M prepared, T seconds, at each client count.
# Target (issue 13): new params at least 5 times faster than base format.
# Medians; the report goes to bench/results/fetch_ab-<UTC date>.md.
# Knobs: T [3] R [3] N [20000] CLIENTS ["1 8"] FA_PORT [25501]
set -Eeuo pipefail
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BASE=${1:-85fe9f9}
T=${T:-3}
R=${R:-3}
N=${N:-20000}
CLIENTS=${CLIENTS:-"1 8"}
PORT=${FA_PORT:-25501}
AB_NAME=fetch_ab
. "$HERE/ab_lib.sh"
ab_setup
load0=$(cut -d' ' -f1-3 /proc/loadavg)

port() { if [ "$1" = base ]; then echo "$PORT"; else echo $((PORT + 1)); fi; }
psql_() {
	runuser -u postgres -- "$W/$1/root/usr/lib/postgresql/15/bin/psql" -h 127.0.0.1 \
		-p "$(port "$1")" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1
}

PK="SELECT * FROM items WHERE id = 1"
FMT="format('SELECT * FROM items WHERE id = %L', id)"
PAR="'SELECT * FROM items WHERE id = \$1'"
for side in base new; do
	ab_start "$side" "$(port "$side")"
	psql_ "$side" <<EOF >/dev/null
CREATE EXTENSION qcache;
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
INSERT INTO items SELECT g, 'item ' || g, g / 10.0 FROM generate_series(1, 10000) g;
ANALYZE items;
SELECT count(qcache_fetch('pk:' || id, $FMT, 0)) FROM generate_series(1, 1000) id;
SELECT qcache_fetch('pk', '$PK', 0);
EOF
done
psql_ new <<EOF >/dev/null
SELECT count(qcache_fetch(NULL, $PAR, 0, params => ARRAY[id::text])) FROM generate_series(1, 10000) id;
EOF

S="$W/scripts"
mkdir -p "$S"
printf '%s\n' '\set id random(1, 1000)' \
	"SELECT qcache_fetch('pk:' || :id::int, format('SELECT * FROM items WHERE id = %L', :id::int), 0);" >"$S/format.sql"
echo "SELECT qcache_fetch('pk', '$PK', 0);" >"$S/fixed.sql"
printf '%s\n' '\set id random(1, 10000)' \
	"SELECT qcache_fetch(NULL, $PAR, 0, params => ARRAY[:id::text]);" >"$S/params.sql"
chown -R postgres:postgres "$S"

# the cases: side and pgbench script
CASES="base:format base:fixed new:params new:fixed new:format"
# in-SQL expression of each case, over g = 1 .. N
expr() {
	case $1 in
	format) echo "qcache_fetch('pk:' || (1 + g % 1000), format('SELECT * FROM items WHERE id = %L', 1 + g % 1000), 0)" ;;
	fixed) echo "qcache_fetch('pk', '$PK', 0)" ;;
	params) echo "qcache_fetch(NULL, $PAR, 0, params => ARRAY[(1 + g % 10000)::text])" ;;
	empty) echo "length('k' || (1 + g % 1000))" ;;
	esac
}
# usql <side> <case>: "cpu_us wall_us" per call
usql() {
	psql_ "$1" <<EOF | tail -1
SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS c0, clock_timestamp() AS t0 \\gset
SELECT count($(expr "$2")) FROM generate_series(1, $N) g;
SELECT round(((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :c0) / 1e3 / $N)::numeric, 3)
  || ' ' || round((extract(epoch FROM clock_timestamp() - :'t0') * 1e6 / $N)::numeric, 3);
EOF
}
# tps <side> <case> <clients>
tps() {
	runuser -u postgres -- "$W/$1/root/usr/lib/postgresql/15/bin/pgbench" -h 127.0.0.1 -p "$(port "$1")" \
		-U postgres -n -M prepared -T "$T" -c "$3" -j $(($3 < 2 ? $3 : 2)) -f "$S/$2.sql" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f%%", (a[NR]-a[1])/m*100}'; }

misses0=$(echo "SELECT misses FROM qcache_stats" | psql_ new)
declare -A C U X
for r in $(seq 1 "$R"); do
	for side in base new; do
		for c in empty $(for sc in $CASES; do [ "${sc%%:*}" = "$side" ] && echo "${sc#*:}"; done); do
			read -r cpu wall <<<"$(usql "$side" "$c")"
			C[$side:$c]+="$cpu "
			U[$side:$c]+="$wall "
		done
	done
	log "in-SQL round $r: $(for sc in base:empty $CASES new:empty; do printf '%s=%s ' "$sc" "$(echo ${C[$sc]} | awk '{print $NF}')"; done)"
done
for cl in $CLIENTS; do
	for sc in $CASES; do tps "${sc%%:*}" "${sc#*:}" "$cl" >/dev/null; done	# warm up
	for r in $(seq 1 "$R"); do
		for sc in $CASES; do X[$sc:$cl]+="$(tps "${sc%%:*}" "${sc#*:}" "$cl") "; done
		log "c=$cl round $r: $(for sc in $CASES; do printf '%s=%s ' "$sc" "$(echo ${X[$sc:$cl]} | awk '{print $NF}')"; done)"
	done
done
misses=$(($(echo "SELECT misses FROM qcache_stats" | psql_ new) - misses0))
load1=$(cut -d' ' -f1-3 /proc/loadavg)

out="$HERE/results/fetch_ab-$(date -u +%F).md"
mkdir -p "$HERE/results"
r3() { echo "scale=3; $1 / $2" | bc -l | sed 's/^\./0./'; }
{
	echo "# Parameterized fetch against 1.2's format() pattern (issue 13), $(date -u '+%F %H:%M') UTC"
	echo
	echo "\`bash bench/fetch_ab.sh $BASE\` (T=${T}s, R=$R rounds alternating, N=$N calls per in-SQL statement, medians)."
	echo "Base: $BASE; new: $(git -C "$REPO" describe --always --dirty). Load average (1, 5, 15 min) at the start: $load0; at the end: $load1."
	echo "Misses on the new cluster during the measured part: $misses (0: every call was a hit)."
	echo
	echo "In-SQL, µs per call (backend CPU time; wall time in brackets), median of $R, spread = (max - min) / median; net = minus the loop without the call:"
	echo
	echo "| case | µs per call | spread | net µs |"
	echo "|---|---:|---:|---:|"
	declare -A M
	for sc in base:empty $CASES new:empty; do M[$sc]=$(echo "${C[$sc]}" | med); done
	for sc in base:empty $CASES new:empty; do
		side=${sc%%:*}
		printf '| %s %s | %s (%s) | %s | %s |\n' "$side" "${sc#*:}" "${M[$sc]}" "$(echo "${U[$sc]}" | med)" \
			"$(echo "${C[$sc]}" | spread)" "$(echo "${M[$sc]} - ${M[$side:empty]}" | bc -l | sed 's/^\./0./')"
	done
	bf=${M[base:format]}; np=${M[new:params]}; nf=${M[new:fixed]}
	be=${M[base:empty]}; ne=${M[new:empty]}
	echo
	echo "- **base format / new params: $(r3 "$bf" "$np")x** per call (net of the loop: $(r3 "$(echo "$bf - $be" | bc -l)" "$(echo "$np - $ne" | bc -l)")x); target >= 5."
	echo "- new params / new fixed: $(r3 "$np" "$nf")x per call (net: $(r3 "$(echo "$np - $ne" | bc -l)" "$(echo "$nf - $ne" | bc -l)")x)."
	echo "- new fixed / base fixed: $(r3 "$nf" "${M[base:fixed]}")x; new format / new params: $(r3 "${M[new:format]}" "$np")x."
	echo
	echo "End to end, pgbench -M prepared, TPS (median of $R; spread):"
	echo
	echo "| clients | base format | base fixed | new params | new fixed | new format | new params / base format | new params / new fixed |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
	for cl in $CLIENTS; do
		line="| $cl |"
		for sc in $CASES; do
			line+=" $(printf '%.0f' "$(echo "${X[$sc:$cl]}" | med)") ($(echo "${X[$sc:$cl]}" | spread)) |"
		done
		p=$(echo "${X[new:params:$cl]}" | med)
		line+=" $(r3 "$p" "$(echo "${X[base:format:$cl]}" | med)") | $(r3 "$p" "$(echo "${X[new:fixed:$cl]}" | med)") |"
		echo "$line"
	done
	echo
	echo "Raw samples, in-SQL CPU µs: $(for sc in base:empty $CASES new:empty; do printf '%s: %s; ' "$sc" "${C[$sc]}"; done)"
	echo "In-SQL wall µs: $(for sc in base:empty $CASES new:empty; do printf '%s: %s; ' "$sc" "${U[$sc]}"; done)"
	echo "TPS: $(for cl in $CLIENTS; do for sc in $CASES; do printf 'c=%s %s: %s; ' "$cl" "$sc" "${X[$sc:$cl]}"; done; done)"
} | tee "$out"
log "report: $out"
}
