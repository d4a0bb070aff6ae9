#!/usr/bin/env bash
# Several rounds of bench/index_curve.sh, alternating 4 kB pages (IX_HUGE=0) and huge pages
# (IX_HUGE=1, which raises vm.nr_hugepages for the run and puts it back), then the medians
# of each (bench/ix_median.py): on a shared 2-core VM one run's 10,000-entry figures move by
# up to 3x between runs, so the ratios the targets are about are taken between medians.
#
# Usage: bash bench/index_curve_rounds.sh OUT_DIR   (as root; PGBIN as for index_curve.sh)
# Knobs: IX_ROUNDS [5], IX_PAGES ["0 1"] (which IX_HUGE values to run), and every knob of
# index_curve.sh (the README's run: IX_OPS=4000 IX_REPS=5 IX_INVALS=40 IX_E2E=200).
# Writes OUT_DIR/r<round>-<pages>/ (each run's files) and OUT_DIR/index_curve_medians.md.
set -Eeuo pipefail
OUT=${1:?usage: index_curve_rounds.sh OUT_DIR}
: "${IX_ROUNDS:=5}" "${IX_PAGES:=0 1}"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
for r in $(seq 1 "$IX_ROUNDS"); do
  for h in $IX_PAGES; do
    d="$OUT/r$r-huge$h"
    mkdir -p "$d"
    IX_HUGE=$h bash "$here/index_curve.sh" "$d" >"$d/run.log" 2>&1 \
      || { echo "index_curve_rounds: round $r (IX_HUGE=$h) failed, see $d/run.log" >&2; exit 1; }
  done
done
{
  for h in $IX_PAGES; do
    label="4 kB pages"; [ "$h" = 1 ] && label="huge pages (huge_pages = on)"
    python3 "$here/ix_median.py" "$label" "$OUT"/r*-huge$h
    echo
  done
} | tee "$OUT/index_curve_medians.md"
