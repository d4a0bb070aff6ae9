# Shared by the A/B benches (bench/namespaces.sh, bench/security.sh) and,
# for its packages and its build, bench/standby.sh: build
# a base commit and this working tree, each into its own relocated copy of
# Debian's PostgreSQL 15 (nothing is installed system-wide), and start one
# cluster for each on 127.0.0.1.  Sourced, not run.  The caller sets
# AB_NAME (the bench's name, for the log and the work directory), BASE and
# REPO, then calls ab_setup; its clusters are stopped by pid on exit.
PGC=/usr/lib/postgresql/15/bin/pg_config

log() { printf '[%(%H:%M:%S)T] %s bench: %s\n' -1 "$AB_NAME" "$*" >&2; }

ab_cleanup() {
	for d in "$W"/base/data "$W"/new/data ${AB_DATA_DIRS:-}; do
		[ -f "$d/postmaster.pid" ] || continue
		kill -INT "$(head -1 "$d/postmaster.pid")" 2>/dev/null || true
	done
	sleep 1
	rm -rf "$W"
}

# build <side> <source dir>: a relocated PostgreSQL with that side's qcache in it
ab_build() {
	local side=$1 src=$2 root="$W/$1/root"
	mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
	cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
	cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
	make -s -C "$src" PG_CONFIG=$PGC >/dev/null
	make -s -C "$src" PG_CONFIG=$PGC DESTDIR="$root" install >/dev/null
	log "$side built from $(cd "$src" && git describe --always --dirty 2>/dev/null || echo "$src")"
}

# The packages and the work directory W (cleaned up on exit); the first
# half of ab_setup and of one_setup.
bench_prepare() {
	local need=(postgresql-15 postgresql-server-dev-15 libhiredis-dev make gcc bc) missing=() p
	W=$(mktemp -d "/tmp/qcache-$AB_NAME-bench.XXXXXX")
	chmod 755 "$W"
	trap ab_cleanup EXIT
	for p in "${need[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# The packages, W, and this working tree built as side "new" (benches of
# one build: bench/standby.sh).
one_setup() {
	bench_prepare
	mkdir -p "$W/new/src"
	tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=bench/results -cf - . | tar -C "$W/new/src" -xf -
	ab_build new "$W/new/src"
	chown -R postgres:postgres "$W"
}

# The packages, the work directory W, and both sides built.
ab_setup() {
	bench_prepare
	mkdir -p "$W/base/src" "$W/new/src"
	git -C "$REPO" archive "$BASE" | tar -C "$W/base/src" -xf -
	tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=bench/results -cf - . | tar -C "$W/new/src" -xf -
	ab_build base "$W/base/src"
	ab_build new "$W/new/src"
	chown -R postgres:postgres "$W"
}

# ab_start <side> <port>: initdb and start that side's cluster
ab_start() {
	local side=$1 port=$2 bin="$W/$1/root/usr/lib/postgresql/15/bin"
	runuser -u postgres -- "$bin/initdb" -D "$W/$side/data" -A trust -U postgres >/dev/null
	cat >>"$W/$side/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$W/$side'
shared_preload_libraries = 'qcache'
shared_buffers = 128MB
max_connections = 50
CONF
	runuser -u postgres -- "$bin/pg_ctl" -D "$W/$side/data" -l "$W/$side/log" -w start >/dev/null
}
