#!/usr/bin/env bash
# Re-indent src/ the PostgreSQL way.  Needs pg_bsd_indent (Debian package
# pg-bsd-indent) and PostgreSQL 15's src/tools/pgindent/pgindent script with
# its typedefs.list, from a PG 15 source tree (e.g. `apt-get source
# postgresql-15`): PGSRC=/path/to/postgresql-15.x bash tools/pgindent.sh
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PGSRC:?set PGSRC to a PostgreSQL 15 source tree}"
tl=$(mktemp)
trap 'rm -f "$tl"' EXIT
cat "$PGSRC/src/tools/pgindent/typedefs.list" "$top/tools/typedefs.list" | sort -u >"$tl"
cd "$top"
perl "$PGSRC/src/tools/pgindent/pgindent" --indent=/usr/bin/pg_bsd_indent \
	--typedefs="$tl" src/*.c src/*.h
