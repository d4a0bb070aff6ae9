#!/usr/bin/env bash
# The demo command: on a fresh Debian 12 (as root), installs what it needs,
# builds and installs qcache, starts a throw-away PostgreSQL 15 with qcache
# preloaded on 127.0.0.1:54329, loads a table big enough that an aggregate
# takes tens of milliseconds, and runs it uncached and then through
# qcache_fetch, with psql's timings and qcache_stats.  Then it stops the
# server and removes its data directory, also on failure.
set -Eeuo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-54329}
BIN=/usr/lib/postgresql/15/bin

need=(postgresql-15 postgresql-server-dev-15 libhiredis-dev make gcc)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building and installing qcache"
make -s -C "$top" PG_CONFIG=$BIN/pg_config >/dev/null
make -s -C "$top" PG_CONFIG=$BIN/pg_config install >/dev/null

dir=$(mktemp -d /tmp/qcache-demo.XXXXXX)
chown postgres:postgres "$dir"
started=0
cleanup() {
	if [ $started = 1 ]; then
		runuser -u postgres -- $BIN/pg_ctl -D "$dir/data" -m fast -w stop >/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

echo "== starting a throw-away PostgreSQL 15 on 127.0.0.1:$PORT"
runuser -u postgres -- $BIN/initdb -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$dir'
shared_preload_libraries = 'qcache'
qcache.memory = 64MB
jit = off
CONF
touch "$dir/server.log"; chown postgres:postgres "$dir/server.log"
runuser -u postgres -- $BIN/pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
	|| { tail -n 20 "$dir/server.log"; exit 1; }
started=1

psql() { $BIN/psql -X -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }

echo "== loading 1,000,000 sales rows"
psql -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION qcache;
CREATE TABLE sales (id int PRIMARY KEY, region text, amount numeric(10,2));
INSERT INTO sales
  SELECT i, 'region-' || (i % 20), round((random() * 1000)::numeric, 2)
  FROM generate_series(1, 1000000) i;
VACUUM ANALYZE sales;
SQL

psql -v ON_ERROR_STOP=1 <<'SQL'
\echo
\echo '-- The report query, uncached: every run scans a million rows.'
\timing on
SELECT region, count(*), round(avg(amount), 2) AS avg
FROM sales GROUP BY region ORDER BY region LIMIT 3;
SELECT region, count(*), round(avg(amount), 2) AS avg
FROM sales GROUP BY region ORDER BY region LIMIT 3;
\timing off
\echo
\echo '-- The same query through qcache_fetch: the first call misses and fills,'
\echo '-- the next ones are served from shared memory.'
\timing on
SELECT jsonb_array_length(qcache_fetch('report:sales_by_region',
  'SELECT region, count(*), round(avg(amount), 2) AS avg FROM sales GROUP BY region ORDER BY region',
  60)) AS rows_first_call;
SELECT jsonb_array_length(qcache_fetch('report:sales_by_region',
  'SELECT region, count(*), round(avg(amount), 2) AS avg FROM sales GROUP BY region ORDER BY region',
  60)) AS rows_cached;
SELECT jsonb_array_length(qcache_fetch('report:sales_by_region',
  'SELECT region, count(*), round(avg(amount), 2) AS avg FROM sales GROUP BY region ORDER BY region',
  60)) AS rows_cached;
\timing off
\echo
\echo '-- The cached rows, as an application reads them:'
SELECT * FROM jsonb_to_recordset(qcache_get('report:sales_by_region'))
  AS r(region text, count bigint, avg numeric) LIMIT 3;
\echo
\echo '-- qcache_watch makes writes invalidate: once an UPDATE commits, the cached'
\echo '-- report is never served again; the next call recomputes it.'
SELECT qcache_watch('sales');
UPDATE sales SET amount = amount + 1000 WHERE id = 1;
\timing on
SELECT jsonb_array_length(qcache_fetch('report:sales_by_region',
  'SELECT region, count(*), round(avg(amount), 2) AS avg FROM sales GROUP BY region ORDER BY region',
  60)) AS rows_recomputed_after_update;
SELECT jsonb_array_length(qcache_fetch('report:sales_by_region',
  'SELECT region, count(*), round(avg(amount), 2) AS avg FROM sales GROUP BY region ORDER BY region',
  60)) AS rows_cached_again;
\timing off
\echo
\echo '-- qcache_stats:'
\x on
SELECT hits, misses, round(hit_ratio::numeric, 2) AS hit_ratio, sets, entries,
       pg_size_pretty(bytes_used) AS bytes_used, pg_size_pretty(bytes_limit) AS bytes_limit,
       evictions_expired AS stale_reclaimed
FROM qcache_stats;
SQL
echo "== stopping the server"
