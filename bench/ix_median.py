#!/usr/bin/env python3
"""Medians over several runs of bench/index_curve.sh (bench/index_curve_rounds.sh).

Usage: ix_median.py LABEL DIR [DIR ...]: each DIR holds one run's index_curve.tsv.
Prints a Markdown table: per step and size, the median of the runs' microseconds per
operation, the 1,000,000 / 10,000 ratio of the medians, and the tag10 / get ratio.
"""
import statistics
import sys
from collections import defaultdict

label, dirs = sys.argv[1], sys.argv[2:]
cells = defaultdict(list)
for d in dirs:
    with open(f"{d}/index_curve.tsv") as f:
        next(f)
        for line in f:
            size, step, us = line.split('\t')[:3]
            try:
                cells[(int(size), step)].append(float(us))
            except ValueError:
                pass
sizes = sorted({s for s, _ in cells})
steps = []
for _, st in cells:
    if st not in steps:
        steps.append(st)
med = {k: statistics.median(v) for k, v in cells.items()}
lo, hi = sizes[0], sizes[-1]
print(f"### {label}: medians of {len(dirs)} runs, microseconds per operation\n")
print("| step | " + " | ".join(f"{s:,}" for s in sizes) + f" | {hi:,} / {lo:,} |")
print("|---|" + "---:|" * (len(sizes) + 1))
for st in steps:
    row = [med.get((s, st)) for s in sizes]
    if any(v is None for v in row):
        continue
    ratio = row[-1] / row[0] if row[0] > 0 else float('nan')
    print(f"| {st} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {ratio:.2f} |")
print()
for num, den in (("tag10", "get"), ("tag_none", "get"), ("prefix10", "get"),
                 ("tag10_e2e", "get_e2e"), ("set_full", "set_room")):
    if all((s, num) in med and (s, den) in med for s in sizes):
        print(f"- {num} / {den}: " + ", ".join(
            f"{med[(s, num)] / med[(s, den)]:.2f} at {s:,}" for s in sizes))
