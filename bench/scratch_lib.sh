# Sourced by the benches: bench/run.sh and bench/redis.sh for the lock, and
# the ones that run one throw-away cluster of their own (index_curve.sh,
# memory.sh, mix_inval.sh) for its stop too.

# One benchmark at a time on this machine: its servers use fixed ports and
# scratch dirs under /tmp, so a second run (bench/run.sh, or one of its
# parts alone) waits for the first, up to 30 minutes.
bench_lock() {
	[ -n "${QCACHE_BENCH_LOCKED:-}" ] && return 0
	exec 9>/tmp/qcache-bench.lock
	if ! flock -n 9; then
		printf 'waiting for another qcache benchmark run to finish (lock /tmp/qcache-bench.lock)\n' >&2
		flock -w 1800 9 || { echo "another benchmark run holds /tmp/qcache-bench.lock" >&2; exit 1; }
	fi
	export QCACHE_BENCH_LOCKED=1
}

# Stop the bench's scratch cluster ($PGDATA_DIR, with $PGBIN's pg_ctl), if
# it runs: by its data directory, whose postmaster.pid names the process.
pg_stop() {
	if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
}

# scratch_init BASE PORT XLOG MAX_CONNECTIONS SHARED_BUFFERS: a fresh cluster
# in BASE/pgdata (initdb as user postgres, its output to XLOG; the server
# log is $PGLOG), on 127.0.0.1:PORT only, its socket in BASE/sock, set for
# a bench (no fsync, no autovacuum, no JIT) with qcache preloaded.  The
# caller appends its own settings, then starts it.  Needs die().
scratch_init() {
	local base=$1 port=$2 xlog=$3 maxconn=$4 sb=$5
	ss -Hltn "( sport = :$port )" | grep -q . && die "port $port is already in use"
	rm -rf "$base"
	mkdir -p "$base/pgdata" "$base/sock"
	chmod 755 "$base"
	chown postgres:postgres "$base/pgdata" "$base/sock"
	touch "$PGLOG"
	chown postgres:postgres "$PGLOG"
	: >"$xlog"
	runuser -u postgres -- "$PGBIN/initdb" -D "$base/pgdata" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >>"$xlog" 2>&1 || die "initdb failed (see $xlog)"
	cat >>"$base/pgdata/postgresql.conf" <<CONF

# ---- a qcache benchmark's scratch cluster (bench/scratch_lib.sh) ----
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base/sock'
max_connections = $maxconn
shared_buffers = $sb
jit = off
autovacuum = off
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = 'qcache'
CONF
}
