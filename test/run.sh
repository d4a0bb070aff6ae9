#!/usr/bin/env bash
# The test command: installs what the suites need (Debian 12), builds and
# installs qcache, then runs every suite -- pg_regress, isolation, TAP -- with
# `make installcheck` as the unprivileged user postgres (initdb refuses root)
# in a copy of the tree that postgres owns.  Every server the suites start is
# a temporary instance on loopback that the suites stop themselves.
#
# Usage: bash test/run.sh            all suites, warnings are errors
#        SUITE=regress|isolation|tap bash test/run.sh     one kind only
#        SUITE=tap:test/t/009_redis.pl bash test/run.sh   one TAP file
#        UBSAN=1 bash test/run.sh    build with -fsanitize=undefined first
set -Eeuo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

need=(postgresql-15 postgresql-server-dev-15 libipc-run-perl make gcc
	libhiredis-dev redis-server redis-sentinel pgbouncer python3-psycopg)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "test/run.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export PATH=/usr/lib/postgresql/15/bin:$PATH
PGC=/usr/lib/postgresql/15/bin/pg_config

# One build-install-test at a time on this machine: `make install` writes
# the one qcache.so that every instance loads, so two runs at once (or a
# run beside a benchmark, which holds the same lock) would test each
# other's builds.
exec 9>/tmp/qcache-bench.lock
if ! flock -n 9; then
	echo "test/run.sh: waiting for another test or benchmark run (/tmp/qcache-bench.lock)"
	flock -w 3600 9
fi

# Build and run in a private copy: the source tree stays clean, and two runs
# at once do not race on its object files.
work=$(mktemp -d /tmp/qcache-test.XXXXXX)
[ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
tar -C "$top" --exclude=.git --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
	--exclude=tmp_check --exclude=tmp_check_iso --exclude=results \
	--exclude=output_iso --exclude=bench/results -cf - . | tar -C "$work" -xf -

cflags="-Wall -Wextra -Wno-unused-parameter -Werror"
shlib=()
if [ "${UBSAN:-0}" = 1 ]; then
	cflags="$cflags -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
	shlib=("SHLIB_LINK=-lhiredis -fsanitize=undefined")
fi
make -C "$work" -s PG_CONFIG=$PGC PG_CFLAGS="$cflags" "${shlib[@]}"
make -C "$work" -s PG_CONFIG=$PGC install
chown -R postgres:postgres "$work"

targets=installcheck
case "${SUITE:-all}" in
	regress)   extra=(ISOLATION= TAP_TESTS=) ;;
	isolation) extra=(REGRESS= TAP_TESTS=) ;;
	tap)       extra=(REGRESS= ISOLATION=) ;;
	tap:*)     extra=(REGRESS= ISOLATION= "PROVE_TESTS=${SUITE#tap:}") ;;
	*)         extra=() ;;
esac

rc=0
runuser -u postgres -- make -C "$work" -s PG_CONFIG=$PGC "${extra[@]}" $targets || rc=$?
if [ $rc -ne 0 ]; then
	for f in "$work"/regression.diffs "$work"/output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "=== $f"; cat "$f"; }
	done
	for f in "$work"/tmp_check/log/*; do
		[ -f "$f" ] && { echo "=== $f (tail)"; tail -n 40 "$f"; }
	done
	echo "test/run.sh: FAILED"
	exit $rc
fi
echo "test/run.sh: all suites passed"
