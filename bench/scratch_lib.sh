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
