#!/usr/bin/env python3
"""Write the qcache benchmark report and its charts from one suite run's raw data.

  python3 bench/report.py --raw-dir bench/results/raw/<stamp> --out bench/results/<date>.md

Reads, in --raw-dir:
  <fp>-<run>.tsv / .meta   rows and metadata of each peers-harness run (bench/peers/run.sh);
                           every harness run is one sample; runs of the latest fingerprint are used
  memory.tsv               the memory step (bench/memory.sh), if present
  redis.tsv, redis_inval.tsv, redis.md   the Redis step (bench/redis.sh), if present
  suite.info               what bench/run.sh recorded (command, qcache revision, knobs, wall time)
Writes --out (markdown), <raw-dir>/figures.tsv (one line per figure), and the charts: for each
chart, <charts-dir>/<report name>-<chart>.tsv (the data), .gp (the gnuplot script) and .png
(gnuplot, pngcairo), where <charts-dir> is charts/ next to --out.

Every figure is the median over runs, with its spread (max-min)/median; ratios are computed
within each run (numerator and baseline measured a minute apart on the same servers), then the
median is taken. A sample during which processes outside the benchmark used more than
--foreign-max % of a core is left out, unless every sample of that figure was disturbed (then
all are used and the figure is flagged ⚑). Python standard library only.
"""
import argparse
import csv
import glob
import os
import statistics
import subprocess

UPD_TARGET = round(1 / 1.3, 3)  # a watched UPDATE costs at most 1.3x the plain one (issue 3)
MEMORY_TARGET = 100.0           # bytes of overhead per 100-byte entry (issue 2)

# Descriptions of the cases (the harness only knows the qcache ones as "extra: <file>").
DESC = {
    "pg_select1": "`SELECT 1`: the protocol round trip with nothing to do, the physical floor",
    "fn_sql_const": "the same ~1 KB jsonb as a constant folded at plan time: the floor for returning 1 KB",
    "qcache_get": "**qcache L1 hit**: `qcache_get(key)`, ~1 KB value, 1000 keys",
    "l2_hit": "**qcache L2 hit**: `qcache_get` served by Redis (`qcache.l1_ttl = 0`), ~1 KB (Redis step)",
    "redis_get": "raw Redis GET of the same ~1 KB (redis-benchmark, no PostgreSQL in the path)",
    "unlogged_kv": "an unlogged table used as a cache: `SELECT value ... WHERE key = $1`",
    "pgmemcache_get": "memcached through pgmemcache: `memcache_get(key)`",
    "qcache_mixed": "90% `qcache_get`, 10% `qcache_set` of the ~1 KB value",
    "qcache_mixed_inval": "90% get (a miss refills from the table), 10% `qcache_invalidate`",
    "qcache_set": "`qcache_set` of a constant ~1 KB value (ttl 0)",
    "pg_pk": "uncached query: primary-key lookup of one row of `products` (100k rows)",
    "qcache_miss_fill": "**qcache miss then fill**: `qcache_fetch` of a new key running that PK query",
    "pg_agg": "uncached query: the per-category aggregate over 100k rows (100 result rows)",
    "pgpool_agg": "that aggregate through pgpool-II's query cache (hits)",
    "fn_agg_const": "the aggregate's jsonb as a constant folded at plan time: the payload floor",
    "qcache_fetch_agg": "**`qcache_fetch` hit** of the aggregate (jsonb)",
    "qcache_fetch_json_agg": "**`qcache_fetch_json` hit** of the aggregate (kept and returned as JSON text)",
    "upd_plain": "UPDATE of one random row of 10,000, table without `qcache_watch`",
    "upd_watched_0": "the same UPDATE, `qcache_watch` on the table, 0 entries on its tag",
    "upd_watched_100": "the same, 100 entries on the table's tag at the start of the run",
    "upd_watched_10000": "the same, 10,000 entries on the table's tag at the start of the run",
    "loop_qcache_get": "qcache_get hit of a ~1 KB value",
    "loop_qcache_set": "qcache_set (replace) of a constant ~1 KB value, ttl 0",
    "loop_qcache_get_miss": "qcache_get of an absent key",
    "loop_unlogged_subq": "an unlogged-table index probe (correlated subquery)",
}

# The get cases of the TPS-against-clients chart, and the mixed-workload chart.
CURVE_GET = [("qcache_get", "qcache L1 hit"), ("pg_select1", "SELECT 1 (floor)"),
             ("fn_sql_const", "1 KB constant (payload floor)"), ("unlogged_kv", "unlogged table"),
             ("pgmemcache_get", "pgmemcache"), ("redis_get", "raw Redis GET (no SQL)")]
CURVE_MIXED = [("qcache_get", "100% gets"), ("qcache_mixed", "10% sets"),
               ("qcache_mixed_inval", "10% invalidations")]


def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def read_kv(path):
    d = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    d[k] = v
    return d


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt_int(v):
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"


def fmt_ratio(v):
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_bytes(b):
    b = int(b)
    for unit, f in (("MB", 1000000), ("KB", 1000)):
        if b >= f and b % f == 0:
            return f"{b // f} {unit}"
    return f"{b} B"


def check(v, op, target):
    if op is None or v is None or target is None:
        return None
    return {">=": v >= target, ">": v > target, "<=": v <= target, "<": v < target}[op]


class Stat:
    """Median and spread of per-run samples, leaving out disturbed samples when it can."""

    def __init__(self, samples):
        # samples: list of (value, clean)
        self.all = [v for v, _ in samples if v is not None]
        clean = [v for v, ok in samples if v is not None and ok]
        self.vals = clean or self.all
        self.noisy = bool(self.all) and not clean
        self.left_out = len(self.all) - len(self.vals)
        self.median = statistics.median(self.vals) if self.vals else None
        self.min = min(self.vals) if self.vals else None
        self.max = max(self.vals) if self.vals else None

    @property
    def spread(self):
        if len(self.vals) < 2 or not self.median:
            return None
        return (self.max - self.min) / abs(self.median) * 100

    def n_txt(self):
        return f"n={len(self.vals)}" + (f" of {len(self.all)}" if self.left_out else "") + (" ⚑" if self.noisy else "")

    def spread_txt(self):
        """e.g. "spread 12%, n=3", "n=1 ⚑", "spread 5%, n=2 of 3" """
        parts = [] if self.spread is None else [f"spread {self.spread:.0f}%"]
        parts.append(self.n_txt())
        return ", ".join(parts)

    def short(self, fmt=fmt_ratio):
        """value with its spread in brackets: "0.92 (±4%)"; ⚑ if noisy"""
        if self.median is None:
            return "n/a"
        s = fmt(self.median)
        extra = [] if self.spread is None else [f"{self.spread:.0f}%"]
        if self.left_out:
            extra.append(f"n={len(self.vals)} of {len(self.all)}")
        if extra:
            s += " (" + ", ".join(extra) + ")"
        return s + (" ⚑" if self.noisy else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--foreign-max", type=float, default=15.0)
    ap.add_argument("--no-charts", action="store_true")
    a = ap.parse_args()
    raw = a.raw_dir
    fmax = a.foreign_max
    suite = read_kv(os.path.join(raw, "suite.info"))
    out_dir = os.path.dirname(os.path.abspath(a.out))
    name = os.path.basename(a.out)[:-3] if a.out.endswith(".md") else os.path.basename(a.out)
    charts_dir = os.path.join(out_dir, "charts")

    # ================================================================ harness runs
    runs = []
    for path in sorted(glob.glob(os.path.join(raw, "*-*.tsv"))):
        stem = path[:-4]
        meta = read_kv(stem + ".meta")
        if "fingerprint" not in meta:
            continue
        runs.append({"id": meta.get("run_id", os.path.basename(stem)), "fp": meta["fingerprint"],
                     "meta": meta, "rows": read_tsv(path), "stem": stem})
    failed = sorted(glob.glob(os.path.join(raw, "*.log.failed")))
    other_fp = []
    runs.sort(key=lambda r: r["id"])
    if runs:
        fp = runs[-1]["fp"]
        other_fp = [r for r in runs if r["fp"] != fp]
        runs = [r for r in runs if r["fp"] == fp]
    else:
        fp = None
    meta = runs[-1]["meta"] if runs else {}
    info = {}  # "bench-info name=value" lines that bench/qcache/setup.sql echoes into the run log
    if runs and os.path.exists(runs[-1]["stem"] + ".log"):
        with open(runs[-1]["stem"] + ".log", errors="replace") as f:
            for line in f:
                if line.startswith("bench-info ") and "=" in line:
                    k, v = line[len("bench-info "):].strip().split("=", 1)
                    info[k] = v

    def clean(fc):
        fc = fnum(fc)
        return fc is None or fc <= fmax

    # per run: {(case, clients): (tps, lat_us, clean, foreign)}; {loop case: (us, clean, foreign)}
    per_run, per_run_loop = [], []
    cases, loop_cases, desc, modes = [], [], {}, {}
    all_clients = set()
    for r in runs:
        t, lp = {}, {}
        for row in r["rows"]:
            c = row["case"]
            base = c[:-len("_simple")] if c.endswith("_simple") else c
            desc[c] = DESC.get(c, DESC.get(base, row["desc"]))
            modes[c] = row.get("mode")
            if row["kind"] in ("pgbench", "redis"):
                t[(c, int(row["clients"]))] = (fnum(row["tps"]), fnum(row["lat_us"]), clean(row.get("foreign_cpu")),
                                               fnum(row.get("foreign_cpu")))
                all_clients.add(int(row["clients"]))
                if c not in cases:
                    cases.append(c)
            elif row["kind"] == "loop":
                lp[c] = (fnum(row["lat_us"]), clean(row.get("foreign_cpu")), fnum(row.get("foreign_cpu")))
                if c not in loop_cases:
                    loop_cases.append(c)
        per_run.append(t)
        per_run_loop.append(lp)
    main_clients = sorted(int(x) for x in (meta.get("clients") or suite.get("clients") or "1 8").split())
    all_clients = sorted(all_clients)
    n = len(runs)

    tps_cache, lat_cache, ratio_cache = {}, {}, {}

    def tps(c, cl):
        if (c, cl) not in tps_cache:
            s = [(t[(c, cl)][0], t[(c, cl)][2]) for t in per_run if (c, cl) in t]
            tps_cache[(c, cl)] = Stat(s) if s else None
        return tps_cache[(c, cl)]

    def lat(c, cl):
        if (c, cl) not in lat_cache:
            s = [(t[(c, cl)][1], t[(c, cl)][2]) for t in per_run if (c, cl) in t]
            lat_cache[(c, cl)] = Stat(s) if s else None
        return lat_cache[(c, cl)]

    def ratio(num, den, cl):
        """TPS ratio num/den computed within each run, median over runs."""
        if (num, den, cl) not in ratio_cache:
            s = []
            for t in per_run:
                if (num, cl) in t and (den, cl) in t and t[(num, cl)][0] and t[(den, cl)][0]:
                    s.append((t[(num, cl)][0] / t[(den, cl)][0], t[(num, cl)][2] and t[(den, cl)][2]))
            ratio_cache[(num, den, cl)] = Stat(s) if s else None
        return ratio_cache[(num, den, cl)]

    def clients_of(c):
        return [cl for cl in all_clients if tps(c, cl) is not None]

    loop_stat = {}
    for c in loop_cases:
        loop_stat[c] = Stat([(lp[c][0], lp[c][1]) for lp in per_run_loop if c in lp])

    # ================================================================ Redis step
    rrows = read_tsv(os.path.join(raw, "redis.tsv"))
    rreps = sorted({r["rep"] for r in rrows}, key=int)
    rby = {(r["rep"], r["case"], int(r["clients"])): r for r in rrows}

    def rstat(case, cl, field):
        s = [(fnum(rby[(rep, case, cl)][field]), True) for rep in rreps if (rep, case, cl) in rby]
        s = [x for x in s if x[0] is not None]
        return Stat(s) if s else None

    def rratio(num, den, cl, field="tps", inverse=False):
        s = []
        for rep in rreps:
            x, y = rby.get((rep, num, cl)), rby.get((rep, den, cl))
            if x and y and fnum(x[field]) and fnum(y[field]):
                v = fnum(x[field]) / fnum(y[field])
                s.append((1 / v if inverse else v, True))
        return Stat(s) if s else None

    def r_l2_target():
        s = []
        for rep in rreps:
            l2, g, s1 = (rby.get((rep, c, 1)) for c in ("l2_hit", "redis_get", "select1"))
            if l2 and g and s1 and None not in (fnum(l2["lat_ms"]), fnum(g["lat_ms"]), fnum(s1["lat_ms"])):
                s.append((fnum(l2["lat_ms"]) / (fnum(g["lat_ms"]) + fnum(s1["lat_ms"])), True))
        return Stat(s) if s else None

    rinval = []
    ipath = os.path.join(raw, "redis_inval.tsv")
    if os.path.exists(ipath):
        with open(ipath) as f:
            rinval = [line.rstrip("\n").split("\t") for line in f if line.count("\t") == 4]

    # ================================================================ memory step
    mem_rows = read_tsv(os.path.join(raw, "memory.tsv"))
    mem100 = next((m for m in mem_rows if m["entry_bytes"] == "100"), None)

    # ================================================================ figures.tsv
    figures = []

    def fig(fname, cl, st, unit, op=None, target=None):
        if st is None:
            return
        figures.append([fname, str(cl), "" if st.median is None else f"{st.median:.6g}",
                        "" if st.min is None else f"{st.min:.6g}", "" if st.max is None else f"{st.max:.6g}",
                        "" if st.spread is None else f"{st.spread:.1f}", str(len(st.vals)),
                        "1" if st.noisy else "0", unit, op or "", "" if target is None else str(target),
                        {True: "met", False: "missed", None: ""}[check(st.median, op, target)]])

    for c in cases:
        for cl in clients_of(c):
            fig(f"tps:{c}", cl, tps(c, cl), "tps")
            fig(f"lat_us:{c}", cl, lat(c, cl), "us")
    for c, st in loop_stat.items():
        fig(f"loop_us:{c}", 1, st, "us/op")

    # ================================================================ targets
    # Each target: a row of the Targets table. cells: [(clients label, Stat, applies)].
    targets = []

    def add_target(issue, label, op, tgt, cells, unit="ratio", why=None, tgt_txt=None, src=""):
        """cells: list of (client label, Stat or None, target applies here: bool, target value)"""
        statuses = []
        for cl, st, applies, tv in cells:
            if st is not None and applies:
                statuses.append((cl, check(st.median, op, tv), st.noisy))
            fig(f"target:{label}", cl, st, unit, op if applies else None, tv if applies else None)
        targets.append({"issue": issue, "label": label, "op": op, "tgt": tgt, "cells": cells,
                        "statuses": statuses, "why": why, "tgt_txt": tgt_txt, "unit": unit, "src": src})

    def ratio_cells(num, den, tv, every=False):
        cls = all_clients if every else main_clients
        cells = []
        for cl in sorted(set(clients_of(num)) & set(clients_of(den))):
            st = ratio(num, den, cl)
            applies = every or cl in main_clients
            cells.append((cl, st, applies and tv is not None, tv))
        return [c for c in cells if c[0] in cls or not every]

    ag = info.get("agg_text_bytes", "?")

    def per_c(f, cls, fmt=fmt_ratio, unit="×"):
        """ "0.93× (c=1) and 0.79× (c=8)" for f(cl) -> Stat """
        parts = []
        for cl in cls:
            st = f(cl)
            parts.append(f"{fmt(st.median) if st and st.median is not None else '?'}{unit}"
                         + (f" (c={cl})" if len(cls) > 1 else ""))
        return " and ".join(parts)

    def noisy_note(num, den, cls):
        sts = [ratio(num, den, cl) for cl in cls]
        if any(st and st.noisy for st in sts):
            return " Every sample of this figure ran under other load (⚑): re-run on a quiet machine."
        if any(st and st.left_out for st in sts):
            return (" Some samples ran under other load and are left out (" + ", ".join(
                f"c={cl}: {st.n_txt()}" for cl, st in zip(cls, sts) if st and st.left_out) + ").")
        return ""

    def why_l1(cls):
        fl = lambda cl: ratio("fn_sql_const", "pg_select1", cl)
        q = lambda cl: ratio("qcache_get", "fn_sql_const", cl)
        if any(fl(cl) is None or q(cl) is None for cl in cls):
            return None
        g = loop_stat.get("loop_qcache_get")
        u = loop_stat.get("loop_unlogged_subq")
        low = [cl for cl in cls if fl(cl).median < 0.9]
        flat = [cl for cl in cls if fl(cl).median >= 0.97]
        t = (f"The function `fn_sql_const` returns the same 1 KB from a constant folded at plan time, with nothing "
             f"looked up: the floor for this payload. It keeps {per_c(fl, cls)} `SELECT 1` in this run (spread "
             + ", ".join(f"{fl(cl).spread or 0:.0f}%" for cl in cls) + ")")
        if low:
            t += (f"; at {', '.join(f'c={cl}' for cl in low)} the payload alone (`jsonb_out` and sending 1 KB, which "
                  "`SELECT 1` does not do) costs more than the target allows")
        if flat:
            t += (f"; at {', '.join(f'c={cl}' for cl in flat)} the payload's cost did not show above the noise, so "
                  "the gap there is qcache's own")
        t += (f". `qcache_get` keeps {per_c(q, cls)} that floor. Inside a backend a hit costs "
              f"{fmt_us(g.median) if g else '?'} µs"
              + (f" (an unlogged-table probe: {fmt_us(u.median)} µs)" if u else "")
              + "; the rest of its distance to the floor is calling a function with a parameter and copying "
              "the value out of shared memory (the constant is neither), and the run-to-run noise of "
              "1-second runs: the spread of `qcache_get / SELECT 1` is "
              + ", ".join(f"{st.spread:.0f}%" if st and st.spread is not None else "n/a"
                          for st in (ratio("qcache_get", "pg_select1", cl) for cl in cls))
              + (f" at {', '.join(f'c={cl}' for cl in cls)}" if len(cls) > 1 else "") + ".")
        if any(cl > 2 for cl in cls):
            t += (" With 8 pgbench clients and 8 backends on 2 cores, every microsecond of CPU per call shows "
                  "in the TPS.")
        return t + noisy_note("qcache_get", "pg_select1", cls)

    def why_pgpool(cls, num="qcache_fetch_agg"):
        base = "pg_select1_simple"
        if any(ratio("pgpool_agg_simple", base, cl) is None for cl in cls):
            base = "pg_select1"
        pp = lambda cl: ratio("pgpool_agg_simple", base, cl)
        if any(pp(cl) is None or pp(cl).median is None for cl in cls):
            return None
        q = lambda cl: ratio(num + "_simple", base, cl)
        need = {cl: 1.5 * pp(cl).median for cl in cls}
        above = [cl for cl in cls if need[cl] > 1]
        t = ("Pgpool-II answers a cached simple-protocol query from its own memory, with the text it stored, "
             f"without reaching PostgreSQL: it runs at {per_c(pp, cls)} PostgreSQL's bare `SELECT 1`"
             + (" in the same simple protocol" if base == "pg_select1_simple" else " (prepared)")
             + ". So 1.5× pgpool means " + " and ".join(
                 f"{fmt_ratio(need[cl])}×" + (f" (c={cl})" if len(cls) > 1 else "") for cl in cls)
             + " that bare round trip"
             + (f" (at {', '.join(f'c={cl}' for cl in above)} faster than `SELECT 1` itself, for a call that "
                "returns the whole aggregate)" if above else "")
             + f"; `{num}_simple` runs at {per_c(q, cls)} it.")
        if num == "qcache_fetch_agg":
            fl = lambda cl: ratio("fn_agg_const", "pg_select1", cl)
            js = lambda cl: ratio("qcache_fetch_json_agg_simple", "pgpool_agg_simple", cl)
            if all(fl(cl) for cl in cls):
                t += (f" A `qcache_fetch` hit also turns the aggregate's jsonb into {ag} bytes of text, and that "
                      f"alone (the same jsonb from a constant folded at plan time, `fn_agg_const`, prepared) keeps "
                      f"only {per_c(fl, cls)} `SELECT 1`.")
            if all(js(cl) for cl in cls):
                t += (f" `qcache_fetch_json`, which keeps the text and skips that conversion, reaches "
                      f"{per_c(js, cls)} pgpool (next row).")
            t += (" With prepared statements (the extended protocol, what most drivers use) pgpool is the "
                  "slower one: see the prepared row.")
        return t + noisy_note(num + "_simple", "pgpool_agg_simple", cls)

    def why_ahead(cls, den="unlogged_kv", den_loop="loop_unlogged_subq", lab="an index probe of the table"):
        g, u = loop_stat.get("loop_qcache_get"), loop_stat.get(den_loop)
        cores = fnum(meta.get("nproc")) or 2
        if not g or not u or g.median is None or u.median is None:
            return None
        saving = u.median - g.median
        parts = []
        for cl in cls:
            st = tps("qcache_get", cl)
            if not st or not st.median:
                return None
            cpu = cores * 1e6 / st.median
            parts.append(f"At c={cl}, {fmt_ratio(ratio('qcache_get', den, cl).median)} (samples "
                         f"{', '.join(fmt_ratio(v) for v in ratio('qcache_get', den, cl).vals)}): the two cores "
                         f"spend about {cpu:.0f} µs of CPU per request (pgbench included), so the expected lead is "
                         f"{fmt_ratio(1 + saving / cpu)}×, smaller than the spread of this figure "
                         f"({ratio('qcache_get', den, cl).spread or 0:.0f}%)")
        return (f"Inside a backend a qcache hit costs {fmt_us(g.median)} µs and {lab} {fmt_us(u.median)} µs "
                f"(in-SQL loops): qcache saves {fmt_us(saving)} µs per read. Both return the same 1 KB, whose "
                "`jsonb_out` and sending cost the same on both sides. " + ". ".join(parts)
                + ". So the lead this suite can expect is a few percent at every client count, and here the "
                "samples fell on the other side of 1: a miss by less than the noise, not a measured cause.")

    # issue 5 (and 2): L1 hit against SELECT 1
    add_target("5, 2", "qcache L1 hit (`qcache_get`, 1 KB) / `SELECT 1`", ">=", 0.9,
               ratio_cells("qcache_get", "pg_select1", 0.9), why=why_l1,
               src="issue 2 states it at -c 1 and -c 8; the other client counts are shown for information")
    for mode, sfx in (("prepared", ""), ("simple", "_simple")):
        add_target("5, 3", f"`qcache_fetch` hit of the aggregate / pgpool-II query cache, {mode}", ">=", 1.5,
                   ratio_cells("qcache_fetch_agg" + sfx, "pgpool_agg" + sfx, 1.5),
                   why=(why_pgpool if mode == "simple" else None),
                   src="issue 5: 1.5× (issue 3 asked 1.2× at -c 1)")
    if any(c.startswith("qcache_fetch_json_agg") for c in cases):
        for mode, sfx in (("prepared", ""), ("simple", "_simple")):
            add_target("5, 3", f"`qcache_fetch_json` hit of the aggregate / pgpool-II query cache, {mode}", ">=",
                       1.5, ratio_cells("qcache_fetch_json_agg" + sfx, "pgpool_agg" + sfx, 1.5),
                       why=((lambda cls: why_pgpool(cls, "qcache_fetch_json_agg")) if mode == "simple" else None),
                       src="the same target for the JSON-text variant")
    for den, lab in (("pgmemcache_get", "pgmemcache"), ("unlogged_kv", "an unlogged table used as a cache")):
        add_target("5", f"qcache L1 hit / {lab}", ">", 1.0, ratio_cells("qcache_get", den, 1.0, every=True),
                   src="issue 5: ahead at every client count",
                   why=(why_ahead if den == "unlogged_kv" else None))
    # issue 2
    add_target("2", "90% get + 10% set / pure get", ">=", 0.85, ratio_cells("qcache_mixed", "qcache_get", 0.85))
    for lc, lab, tv in (("loop_qcache_get", "in-SQL `qcache_get`, 1 KB hit, µs over the loop", 0.3),
                        ("loop_qcache_set", "in-SQL `qcache_set`, 1 KB, µs over the loop", 1.0)):
        if lc in loop_stat:
            add_target("2", lab, "<=", tv, [(1, loop_stat[lc], True, tv)], unit="us")
    if mem100:
        ov = Stat([(fnum(mem100["overhead_per_entry"]), True)])
        add_target("2", f"memory overhead per 100-byte entry (bytes; qcache.memory = "
                   f"{int(mem100['memory_bytes']) // 1048576} MB, max_entries {int(mem100['max_entries']):,})",
                   "<=", MEMORY_TARGET, [("–", ov, True, MEMORY_TARGET)], unit="bytes")
    # issue 3
    for mode, sfx in (("prepared", ""), ("simple", "_simple")):
        add_target("3", f"`qcache_fetch` hit / the same jsonb from a constant, {mode}", ">=", 0.9,
                   ratio_cells("qcache_fetch_agg" + sfx, "fn_agg_const" + sfx, 0.9))
    for N in ("0", "100", "10000"):
        if "upd_watched_" + N in cases:
            add_target("3", f"UPDATE with `qcache_watch`, {int(N):,} entries on the tag / without", ">=", UPD_TARGET,
                       ratio_cells("upd_watched_" + N, "upd_plain", UPD_TARGET), tgt_txt="≥ 0.77 (≤ 1.3× the cost)")
    # issue 4
    l2t = r_l2_target()

    def why_l2(cls):
        a, g, s1 = (rstat(c, 1, "lat_ms") for c in ("l2_hit", "redis_get", "select1"))
        if not (a and g and s1):
            return None
        a, g, s1 = a.median * 1000, g.median * 1000, s1.median * 1000
        ppath = os.path.join(raw, "redis_parse_us.txt")
        parse = fnum(open(ppath).read().strip()) if os.path.exists(ppath) else None
        return (f"An L2 hit took {a:.0f} µs at c=1, where `SELECT 1` on the same cluster took {s1:.0f} µs and a "
                f"raw GET of the same value {g:.0f} µs: {a - s1 - g:.0f} µs more than the two together"
                + (f", of which parsing the JSON into jsonb is {parse:.1f} µs (measured in the same step)"
                   if parse is not None else "")
                + ". The rest is qcache's Redis call itself: a Lua script that checks the value's stamps against "
                "the invalidation stamps (EVALSHA, where the raw figure is a plain GET) and the client library's "
                "round trip from inside a backend; this suite does not split it further. Samples: "
                + ", ".join(fmt_ratio(v) for v in l2t.vals) + f" (spread {l2t.spread or 0:.0f}%).")

    if l2t:
        add_target("4", "L2 hit latency / (raw Redis GET + `SELECT 1`), c=1 (Redis step)", "<=", 1.5,
                   [(1, l2t, True, 1.5)], why=why_l2)
    cells = [(cl, rratio("get_down", "get_nourl", cl), True, 0.9) for cl in (1, 8)]
    if any(st for _, st, _, _ in cells):
        add_target("4", "`qcache_get` with Redis down / without Redis (Redis step)", ">=", 0.9,
                   [c for c in cells if c[1]])

    # ================================================================ charts
    charts = {}  # key -> (png relpath, tsv relpath, title)
    os.makedirs(charts_dir, exist_ok=True) if not a.no_charts else None

    def write_chart(key, title, header, rows, gp):
        base = os.path.join(charts_dir, f"{name}-{key}")
        with open(base + ".tsv", "w") as f:
            f.write("# " + title + "\n")
            f.write("\t".join(header) + "\n")
            for r in rows:
                f.write("\t".join("?" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in r)
                        + "\n")
        with open(base + ".gp", "w") as f:
            f.write(f"# gnuplot {base}.gp  (made by bench/report.py; data in the .tsv next to it)\n")
            f.write("set terminal pngcairo size 900,560 font 'sans,10' noenhanced\n")
            f.write(f"set output '{os.path.basename(base)}.png'\n")
            f.write("set datafile separator '\\t'\nset datafile missing '?'\n"
                    "set key inside left top box opaque\n")
            f.write("set grid\n")
            f.write(gp.replace("@TSV@", f"'{os.path.basename(base)}.tsv'"))
        try:
            subprocess.run(["gnuplot", os.path.basename(base) + ".gp"], cwd=charts_dir, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
            charts[key] = (os.path.relpath(base + ".png", out_dir), os.path.relpath(base + ".tsv", out_dir), title)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"report: gnuplot failed for {key}: {e}")

    def med3(st):
        return (st.median, st.min, st.max) if st else (None, None, None)

    def series_plot(series, xcol_label, extra=""):
        parts = []
        for i, (c, lab) in enumerate(series):
            col = 2 + 3 * i
            style = "lw 3" if "qcache" in c else "lw 1.5"
            if c in ("pg_select1", "fn_sql_const") or c.startswith("size_const"):
                style += " dt 2"
            parts.append(f"@TSV@ using 1:{col}:{col + 1}:{col + 2} with yerrorlines {style} pt 7 ps 0.8 "
                         f"title '{lab}'")
        return extra + "plot " + ", \\\n     ".join(parts) + "\n"

    if not a.no_charts and runs:
        # 1. TPS against client count
        series = [(c, lab) for c, lab in CURVE_GET if clients_of(c)]
        if series:
            cls = sorted({cl for c, _ in series for cl in clients_of(c)})
            rows = [[cl] + [v for c, _ in series for v in med3(tps(c, cl))] for cl in cls]
            hdr = ["clients"] + [f"{c}_{k}" for c, _ in series for k in ("median", "min", "max")]
            write_chart("tps_clients", "TPS against client count, get of a ~1 KB value (median of runs, "
                        "bars min-max)", hdr, rows, series_plot(series, "clients", (
                            "set title 'Get of a ~1 KB value: TPS against clients (pgbench -M prepared, 2 cores)'\n"
                            "set key below horizontal maxrows 2 nobox noopaque\nset xlabel offset 0,0.5\n"
                            "set logscale x 2\nset xtics (" + ", ".join(str(c) for c in cls) + ")\n"
                            "set xlabel 'clients (pgbench -c)'\nset ylabel 'transactions per second'\n"
                            "set yrange [0:*]\nset format y '%.0s%c'\n")))
        # 2. latency against value size
        sizes = sorted({int(c.rsplit("_", 1)[1]) for c in cases if c.startswith("size_qcache_get_")})
        if sizes:
            sser = [("size_qcache_get", "qcache L1 hit (qcache_get)"), ("size_const", "constant jsonb (SQL floor)"),
                    ("size_redis_get", "raw Redis GET (no SQL)")]
            rows = [[b] + [v for s, _ in sser for v in med3(lat(f"{s}_{b}", 1))] for b in sizes]
            hdr = ["value_bytes"] + [f"{s}_us_{k}" for s, _ in sser for k in ("median", "min", "max")]
            write_chart("latency_size", "Latency (µs, c=1) against value size (bytes of JSON text)", hdr, rows,
                        series_plot([(s, lab) for s, lab in sser], "bytes", (
                            "set title 'Latency of one get against value size (-c 1; median of runs, bars min-max)'\n"
                            "set logscale xy 10\nset xlabel 'value size (bytes of JSON text)'\n"
                            "set ylabel 'latency per get (µs)'\nset format x '%.0s%cB'\n")))
        # 3. mixed workloads
        series = [(c, lab) for c, lab in CURVE_MIXED if clients_of(c)]
        if len(series) > 1:
            cls = sorted({cl for c, _ in series for cl in clients_of(c)})
            rows = [[cl] + [v for c, _ in series for v in med3(tps(c, cl))] for cl in cls]
            hdr = ["clients"] + [f"{c}_{k}" for c, _ in series for k in ("median", "min", "max")]
            write_chart("mixed", "qcache TPS with 10% sets or 10% invalidations, against pure gets", hdr, rows,
                        series_plot(series, "clients", (
                            "set title 'qcache: 10% sets or 10% invalidations among gets (1 KB values, 1000 keys)'\n"
                            "set key right bottom box opaque\n"
                            "set logscale x 2\nset xtics (" + ", ".join(str(c) for c in cls) + ")\n"
                            "set xlabel 'clients (pgbench -c)'\nset ylabel 'transactions per second'\n"
                            "set yrange [0:*]\nset format y '%.0s%c'\n")))
        # 4. memory per entry
        if mem_rows:
            rows = []
            for m in mem_rows:
                rows.append([int(m["entry_bytes"]), fnum(m["bytes_per_entry"]), fnum(m.get("redis_used_per_entry")),
                             fnum(m.get("redis_memory_usage")), int(m["entry_bytes"])])
            hdr = ["entry_bytes", "qcache_bytes_per_entry", "redis_used_memory_per_entry", "redis_memory_usage",
                   "payload_bytes"]
            gp = ("set title 'Memory per entry against entry size (key 10 B + value)'\n"
                  "set multiplot layout 1,2\nset key inside left top\n"
                  "set logscale xy 10\nset xlabel 'entry size (bytes)'\nset ylabel 'bytes of memory per entry'\n"
                  "set format x '%.0s%cB'\nset format y '%.0s%cB'\n"
                  "plot @TSV@ using 1:2 with linespoints lw 3 pt 7 title 'qcache (qcache.memory / entries that fit)', "
                  "\\\n     @TSV@ using 1:3 with linespoints lw 1.5 pt 5 title 'Redis used_memory / entries', "
                  "\\\n     @TSV@ using 1:4 with linespoints lw 1.5 dt 2 pt 4 title 'Redis MEMORY USAGE', "
                  "\\\n     @TSV@ using 1:5 with lines lw 1 lc 'gray' title 'the bytes themselves'\n"
                  "unset title\nset logscale y 10\nset logscale x 10\nset ylabel 'overhead (% of the entry size)'\n"
                  "set format y '%g%%'\nset key inside right top\n"
                  "plot @TSV@ using 1:(100*($2-$1)/$1) with linespoints lw 3 pt 7 title 'qcache', "
                  "\\\n     @TSV@ using 1:(100*($3-$1)/$1) with linespoints lw 1.5 pt 5 title 'Redis used_memory', "
                  "\\\n     @TSV@ using 1:(100*($4-$1)/$1) with linespoints lw 1.5 dt 2 pt 4 title 'Redis MEMORY USAGE'\n"
                  "unset multiplot\n")
            write_chart("memory", "Bytes of memory per entry against entry size: qcache and Redis", hdr, rows, gp)

    # ================================================================ markdown
    out = []
    w = out.append
    date = suite.get("date") or meta.get("date", "?")
    mode = suite.get("mode", "?")
    w(f"# qcache benchmark, {date}")
    w("")
    if suite.get("qcache_changed"):
        w(f"> **Warning**: {suite['qcache_changed']}.")
        w("")
    if mode == "quick":
        w("> **Quick mode** (`--quick`): 1-second pgbench runs, one sample, fewer client counts and sizes. "
          "A smoke test of the suite, not figures to quote.")
        w("")
    wall = fnum(suite.get("wall_s"))
    w(f"Made by `{suite.get('command', 'bash bench/run.sh')}`"
      + (f" in **{int(wall) // 60} min {int(wall) % 60} s** of wall time (packages, build, every step, up to "
         "this report)" if wall else "") + ". "
      f"qcache {suite.get('qcache_rev', '?')}"
      + (" with uncommitted changes in the working tree" if suite.get("qcache_dirty") == "1" else "")
      + (f"; qcache {suite['qcache_build']}" if suite.get("qcache_build") else "") + ".")
    if meta:
        w(f"Machine: {meta.get('nproc')} cores ({meta.get('cpu')}), {meta.get('mem')} RAM, {meta.get('os')}, "
          f"kernel {meta.get('kernel')}; clients and servers share the cores. PostgreSQL {meta.get('postgres')}, "
          f"{meta.get('pgpool')}, pgmemcache {meta.get('pgmemcache')}, {meta.get('memcached')}, "
          f"Redis {meta.get('redis')}.")
        w("")
        w(f"**{n} sample(s)**: the harness ran {n} time(s), each time starting every server afresh and "
          f"running every case; each figure is the median over samples, with its spread "
          f"((max − min) / median). pgbench `-n -M {meta.get('mode')}` over TCP 127.0.0.1, "
          f"`-T {meta.get('T')}` at -c {{{' '.join(map(str, main_clients))}}} and "
          f"`-T {meta.get('short_T', meta.get('T'))}` for the other curve points (-j = min(c, {meta.get('jobs')})). "
          + "Samples: " + ", ".join(
              f"`{r['id']}` ({r['meta'].get('elapsed_s', '?')} s, max foreign CPU "
              f"{max([fnum(x.get('foreign_cpu')) or 0 for x in r['rows']] or [0]):.0f}%)" for r in runs) + ".")
        if failed:
            w(f"{len(failed)} harness run(s) failed and are not counted: "
              + ", ".join(f"`{os.path.basename(p)}`" for p in failed) + ".")
        if other_fp:
            w(f"{len(other_fp)} run(s) of another configuration in the raw dir were ignored.")
    else:
        w("")
        w("**No harness run completed**: no throughput or loop figures.")
    w("")

    # ---- how to read this
    w("## How to read this")
    w("")
    w("- **`SELECT 1` is the physical floor**: a prepared statement's round trip to PostgreSQL over "
      "loopback TCP, with nothing to compute and nothing to send back. Nothing served through SQL can beat it. "
      "A cache at 0.9× `SELECT 1` adds about 11% to the bare round trip (1 / 0.9).")
    w("- **A ratio is the requests per second of a case divided by those of its baseline, both measured in "
      "the same sample**, a minute apart on the same servers (the median over samples is shown). For an "
      "application whose time goes to database round trips, 1.2 means 20% more requests served by the same "
      "connections and cores, 0.8 means 20% fewer. What each one tells an application:")
    w("  - *× `SELECT 1`*: the share of the bare round trip's rate that a case keeps; 1 would mean the cache "
      "costs nothing on top of the round trip.")
    w("  - *qcache L1 ÷ unlogged table, ÷ pgmemcache, ÷ raw Redis GET*: how many more (or fewer) reads per "
      "second the application gets from qcache than from that cache, for the same 1 KB value.")
    w("  - *÷ uncached query*: for a hit, how many requests are served for each one the database would have "
      "computed; for the miss then fill (below 1), the share of the uncached rate a miss keeps: 0.5 means a "
      "miss costs twice the query alone.")
    w("  - *÷ pgpool*: against putting pgpool-II's query cache between the application and PostgreSQL.")
    w("  - *10% sets ÷ pure gets, 10% invalidations ÷ pure gets*: what writes to the cache cost its readers.")
    w("  - *watched UPDATE ÷ plain UPDATE*: what `qcache_watch` costs the writers of a table.")
    w("- **µs at c=1** is what one connection waits per request (pgbench's average latency); at c=8 and "
      "above, the two cores are shared by pgbench's clients and the servers, so TPS there is a CPU-bound "
      "total for client plus server, not a server's capacity.")
    w("- **Raw Redis GET** does not go through PostgreSQL: it is what an application pays when it talks to "
      "Redis directly, over its own connection (an application that has PostgreSQL open anyway pays both).")
    w("- **Spread** = (max − min) / median over the samples; `n` = samples used. Samples during which "
      f"processes outside the benchmark used more than {fmax:.0f}% of a core are left out (`n=2 of 3`); "
      "⚑ marks a figure whose every sample was disturbed. Trust figures without ⚑ and with a small spread.")
    w("")

    # ---- targets
    w("## Targets")
    w("")
    w("Every target of the issues, side by side. Each cell: the median over samples (spread). A missed "
      "target says why, with figures from this same run.")
    w("")
    w("| issue | figure | measured | target | status |")
    w("|---|---|---|---|---|")
    whys = []
    for t in targets:
        cells = []
        for cl, st, applies, tv in t["cells"]:
            if st is None:
                continue
            fmt = fmt_us if t["unit"] == "us" else (lambda v: f"{v:.1f}") if t["unit"] == "bytes" else fmt_ratio
            txt = st.short(fmt)
            if not applies:
                txt = f"({txt})"
            cells.append(txt if cl == "–" else f"c={cl}: {txt}")
        tgt_txt = t["tgt_txt"] or f"{t['op']} {t['tgt']:g}" + (" µs" if t["unit"] == "us" else " B" if t["unit"] == "bytes" else "")
        missed = [cl for cl, s, _ in t["statuses"] if s is False]
        if not t["statuses"]:
            status = "n/a"
        elif not missed:
            status = "met" + (" ⚑" if any(nz for _, _, nz in t["statuses"]) else "")
        else:
            status = "**MISSED** at " + ", ".join(f"c={cl}" for cl in missed)
            met = [cl for cl, s, _ in t["statuses"] if s]
            if met:
                status += "; met at " + ", ".join(f"c={cl}" for cl in met)
            whys.append((t, missed))
        src = f" ({t['src']})" if t["src"] else ""
        w(f"| {t['issue']} | {t['label']}{src} | {'; '.join(cells)} | {tgt_txt} | {status} |")
    w("")
    w("Values in brackets are shown for information: the target is stated at other client counts.")
    w("")
    if whys:
        w("**Why the missed targets are missed**")
        w("")
        for t, missed in whys:
            r = t["why"](missed) if t["why"] else None
            if not r:
                parts = []
                for cl in missed:
                    st = next(x for c, x, _, _ in t["cells"] if c == cl)
                    parts.append(f"At c={cl}: {fmt_ratio(st.median)} (samples "
                                 f"{', '.join(fmt_ratio(v) for v in st.vals)}, {st.n_txt()})")
                sts = [next(x for c, x, _, _ in t["cells"] if c == cl) for cl in missed]
                r = ("; ".join(parts) + ". This suite measures no cause for it: "
                     + ("every sample ran under other load; re-run on a quiet machine."
                        if any(st.noisy for st in sts) else
                        "only some samples ran on a quiet machine, and a figure this close to its target can "
                        "fall on either side of it from one run to the next."
                        if any(st.left_out for st in sts) else
                        "a figure within its spread of the target can fall on either side of it from one run to "
                        "the next."))
            w(f"- *{t['label']}*: " + r)
        w("")

    # ---- the cases side by side
    w("## The cases side by side")
    w("")
    w("TPS with its spread in brackets; every ratio is computed within each sample against the baseline "
      "named in the column, then the median is taken.")
    w("")

    def tps_cell(c, cl):
        st = tps(c, cl)
        return "n/a" if st is None else st.short(fmt_int)

    def lat_cell(c, cl):
        st = lat(c, cl)
        return "n/a" if st is None else fmt_us(st.median)

    def ratio_cell(num, den, cl):
        st = ratio(num, den, cl)
        return "–" if st is None else st.short()

    mc = main_clients
    w("**A ~1 KB value by key** (1000 keys, the same JSON document in every cache):")
    w("")
    w("| case | what | " + " | ".join(f"TPS c={cl} | µs c={cl}" for cl in mc) + " | "
      + " | ".join(f"× `SELECT 1` c={cl}" for cl in mc) + " | "
      + " | ".join(f"qcache L1 ÷ this c={cl}" for cl in mc) + " |")
    w("|---|---|" + "---:|---:|" * len(mc) + "---:|" * len(mc) * 2)
    for c in ("pg_select1", "fn_sql_const", "qcache_get", "l2_hit", "redis_get", "unlogged_kv", "pgmemcache_get",
              "qcache_mixed", "qcache_mixed_inval"):
        if c == "l2_hit":
            if not rrows:
                continue
            cells = []
            for cl in mc:
                st, lt = rstat("l2_hit", cl, "tps"), rstat("l2_hit", cl, "lat_ms")
                cells += [st.short(fmt_int) if st else "n/a", fmt_us(lt.median * 1000) if lt else "n/a"]
            rs = [rratio("l2_hit", "select1", cl) for cl in mc]
            w(f"| `qcache_get` L2 | {DESC['l2_hit']} | " + " | ".join(cells) + " | "
              + " | ".join(st.short() + " ‡" if st else "n/a" for st in rs) + " | "
              + " | ".join((lambda st: st.short() + " ‡" if st else "–")(rratio("get_nourl", "l2_hit", cl))
                           for cl in mc) + " |")
            continue
        if c not in cases:
            continue
        cells = []
        for cl in mc:
            cells += [tps_cell(c, cl), lat_cell(c, cl)]
        w(f"| `{c}` | {desc.get(c, DESC.get(c, ''))} | " + " | ".join(cells) + " | "
          + " | ".join("1" if c == "pg_select1" else ratio_cell(c, "pg_select1", cl) for cl in mc) + " | "
          + " | ".join("–" if c == "qcache_get" else ratio_cell("qcache_get", c, cl) for cl in mc) + " |")
    w("")
    if rrows:
        w("‡ The L2 hit comes from the Redis step (`bench/redis.sh`): its own PostgreSQL cluster, with "
          "`qcache.redis_url` set, and a `SELECT 1` measured there in the same rep as its baseline; its \"qcache "
          "L1 ÷ this\" is an L1 hit on that cluster (with `qcache.redis_url = ''`) against the L2 hit. An L2 hit is an "
          "L1 miss served by Redis: one Redis round trip (a Lua script checking the value's stamps) and parsing "
          "the JSON into jsonb, on top of the SQL call.")
        w("")
    w("**A query's result** (the uncached query, the caches that serve it, and the floor for its payload):")
    w("")
    w("| case | what | " + " | ".join(f"TPS c={cl} | µs c={cl}" for cl in mc) + " | "
      + " | ".join(f"÷ uncached query c={cl}" for cl in mc) + " | "
      + " | ".join(f"÷ pgpool c={cl}" for cl in mc) + " |")
    w("|---|---|" + "---:|---:|" * len(mc) + "---:|" * len(mc) * 2)
    rows_b = [("pg_pk", None, None), ("qcache_miss_fill", "pg_pk", None), ("pg_agg", None, None)]
    for sfx in ("", "_simple"):
        if sfx:
            rows_b.append(("pg_select1_simple", None, None))
        for c in ("pgpool_agg", "fn_agg_const", "qcache_fetch_agg", "qcache_fetch_json_agg"):
            rows_b.append((c + sfx, "pg_agg", None if c == "pgpool_agg" else "pgpool_agg" + sfx))
    for c, unc, pool in rows_b:
        if c not in cases:
            continue
        cells = []
        for cl in mc:
            cells += [tps_cell(c, cl), lat_cell(c, cl)]
        d = desc.get(c, "") + (" (`-M simple`)" if c.endswith("_simple") else "")
        w(f"| `{c}` | {d} | " + " | ".join(cells) + " | "
          + " | ".join("–" if unc is None else ratio_cell(c, unc, cl) for cl in mc) + " | "
          + " | ".join("–" if pool is None else ratio_cell(c, pool, cl) for cl in mc) + " |")
    w("")
    w(f"The aggregate: `{open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'peers', 'scripts', 'agg.sql')).read().strip()}` "
      f"over 100k rows, {meta.get('agg_exec_ms', '?')} ms uncached in this run; its result is 100 rows, "
      f"{info.get('agg_jsonb_bytes', '?')} bytes of jsonb, {ag} bytes as text. The `qcache_fetch` entries are "
      "stored before the runs (`bench/qcache/setup.sql`, or the first call), so every call is a hit. "
      "pgpool caches the aggregate after its first execution; its auto-invalidation was checked: "
      f"{meta.get('pgpool_invalidation', 'not run')}. `qcache_miss_fill` uses a new key on every call "
      "(one of 10^9), so every call misses, runs the PK query through SPI, stores the row and returns it; its "
      "ratio to `pg_pk` is what a miss costs against not caching at all.")
    w("")
    upd = [c for c in ("upd_plain", "upd_watched_0", "upd_watched_100", "upd_watched_10000") if c in cases]
    if upd:
        w("**Writes**: the cost of `qcache_watch`'s invalidation trigger on an UPDATE.")
        w("")
        w("| case | what | " + " | ".join(f"TPS c={cl}" for cl in mc) + " | "
          + " | ".join(f"÷ `upd_plain` c={cl}" for cl in mc) + " |")
        w("|---|---|" + "---:|" * len(mc) * 2)
        for c in upd:
            w(f"| `{c}` | {desc.get(c, '')} | " + " | ".join(tps_cell(c, cl) for cl in mc) + " | "
              + " | ".join("–" if c == "upd_plain" else ratio_cell(c, "upd_plain", cl) for cl in mc) + " |")
        w("")
        w(f"N entries on the tag are stored by the first transaction of client 0 "
          f"(`bench_upd_populate`, {info.get('populate_10000_ms', '?')} ms for 10,000) while the other clients wait "
          "100 ms; the first UPDATE's commit makes them all stale at once (one stamp per tag) and the sweeper "
          "frees them. The cluster runs with `fsync = off`, `synchronous_commit = off`: a plain UPDATE costs "
          "no WAL flush, so the trigger's share is larger than on a durable server.")
        w("")

    # ---- charts
    w("## Charts")
    w("")
    if not charts:
        w("No charts (gnuplot missing, or no data).")
        w("")
    for key, text in (
            ("tps_clients", "**TPS against client count**, get of a ~1 KB value. Bars: min–max over samples. "
                            "Raw Redis GET does not go through PostgreSQL."),
            ("latency_size", "**Latency against value size**, one client: a qcache L1 hit, the same bytes as a "
                             "constant (the floor of returning that much through SQL), and a raw Redis GET."),
            ("mixed", "**qcache with 10% sets or 10% invalidations** among gets. After an invalidation the next "
                      "get of that key misses and refills it from the table (about 10% of gets in the steady "
                      "state)."),
            ("memory", "**Bytes of memory per entry against entry size**, qcache next to Redis for the same "
                       "entries (left), and the overhead as a share of the entry (right).")):
        if key in charts:
            png, tsv, title = charts[key]
            w(text + f" Data: [{os.path.basename(tsv)}]({tsv}).")
            w("")
            w(f"![{title}]({png})")
            w("")

    # TPS against clients table
    series = [(c, lab) for c, lab in CURVE_GET + CURVE_MIXED[1:] if clients_of(c)]
    if series:
        cls = sorted({cl for c, _ in series for cl in clients_of(c)})
        w("TPS against client count (median, spread in brackets), and qcache's ratios at each count:")
        w("")
        w("| case | " + " | ".join(f"c={cl}" for cl in cls) + " |")
        w("|---|" + "---:|" * len(cls))
        for c, lab in series:
            w(f"| `{c}` ({lab}) | " + " | ".join(tps_cell(c, cl) if tps(c, cl) else "–" for cl in cls) + " |")
        for num, den in (("qcache_get", "pg_select1"), ("qcache_get", "fn_sql_const"), ("qcache_get", "unlogged_kv"),
                         ("qcache_get", "pgmemcache_get"), ("qcache_get", "redis_get"),
                         ("qcache_mixed", "qcache_get"), ("qcache_mixed_inval", "qcache_get")):
            if num in cases and den in cases:
                w(f"| {num} ÷ {den} | " + " | ".join(ratio_cell(num, den, cl) for cl in cls) + " |")
        w("")
    sizes = sorted({int(c.rsplit("_", 1)[1]) for c in cases if c.startswith("size_qcache_get_")})
    if sizes:
        w("Latency against value size, c=1 (µs, median; spread in brackets):")
        w("")
        w("| value (JSON text) | qcache L1 hit | constant (SQL floor) | qcache ÷ floor (TPS) | raw Redis GET |")
        w("|---:|---:|---:|---:|---:|")
        for b in sizes:
            q, k, r = (lat(f"{s}_{b}", 1) for s in ("size_qcache_get", "size_const", "size_redis_get"))
            w(f"| {fmt_bytes(b)} | {q.short(fmt_us) if q else 'n/a'} | {k.short(fmt_us) if k else 'n/a'} | "
              f"{ratio_cell(f'size_qcache_get_{b}', f'size_const_{b}', 1)} | {r.short(fmt_us) if r else 'n/a'} |")
        w("")
        big = sizes[-1]
        kb, qb = lat(f"size_const_{big}", 1), ratio(f"size_qcache_get_{big}", f"size_const_{big}", 1)
        w("Each size: 10 keys holding a jsonb string whose JSON text is exactly that many bytes (hex digits). "
          "Past a few KB, both SQL paths pay PostgreSQL turning jsonb into text and sending it"
          + (f" ({kb.median / 1000:.1f} ms for {fmt_bytes(big)} here)" if kb and kb.median else "")
          + "; `qcache_get` also copies the value out of shared memory into the backend"
          + (f" ({fmt_ratio(qb.median)}× the floor at {fmt_bytes(big)})" if qb and qb.median else "")
          + ". Redis sends the stored bytes as they are.")
        w("")

    # ---- memory
    if mem_rows:
        m0 = mem_rows[0]
        w("## Memory per entry")
        w("")
        w(f"A throw-away cluster with `qcache.memory = {int(m0['memory_bytes']) // 1048576}MB` is filled with "
          f"entries of exactly N bytes until the first eviction: a key of {m0['key_bytes']} bytes plus a jsonb "
          f"string whose VARSIZE is N − {m0['key_bytes']} bytes; no tags, ttl 0. bytes/entry = qcache.memory / "
          "entries that fit (everything: entry header, allocator rounding, the bucket array of `max_entries`, "
          "sized as the smallest power of 2 above the entries that fit). Redis (its own server, jemalloc) "
          "receives as many entries under the same keys, each value the JSON text of qcache's value (what "
          "qcache's second level stores there); `MEMORY USAGE` is the median of 5 keys, `used_memory` per entry "
          "is the growth of `used_memory` divided by the entries (its hash table included). The fills are "
          "deterministic: one fill per size.")
        w("")
        w("| N | entries that fit | qcache bytes/entry | qcache overhead | Redis `MEMORY USAGE` | Redis `used_memory`/entry | max_entries | limited by |")
        w("|---:|---:|---:|---:|---:|---:|---:|---|")
        for m in mem_rows:
            eb = int(m["entry_bytes"])
            ov = fnum(m["overhead_per_entry"])
            rmu, rpe = fnum(m.get("redis_memory_usage")), fnum(m.get("redis_used_per_entry"))
            w(f"| {fmt_bytes(eb)} | {int(m['entries_fit']):,} | {fnum(m['bytes_per_entry']):,.1f} | "
              f"{ov:,.1f} B ({100 * ov / eb:.1f}%) | "
              + (f"{rmu:,.0f} ({100 * (rmu - eb) / eb:+.1f}%)" if rmu else "n/a") + " | "
              + (f"{rpe:,.1f} ({100 * (rpe - eb) / eb:+.1f}%)" if rpe else "n/a") + " | "
              f"{int(m['max_entries']):,} | {m['limited_by']} |")
        w("")
        w("qcache's entries come from PostgreSQL's DSA allocator: up to 8 kB from fixed size classes (an entry "
          "of 1 KB plus its 56-byte header takes the 1,280-byte class), above that from whole 4 kB pages (10 KB "
          "takes 12 KB). That rounding is most of qcache's overhead at 1 KB and 10 KB, where Redis's jemalloc has "
          "finer classes; at 100 KB jemalloc's rounding is the larger one.")
        w("")

    # ---- loops
    if loop_stat:
        w("## In-SQL cost per operation (one backend, no client round trip)")
        w("")
        w("`SELECT count(expr) FROM generate_series(1, N) i`, minus the same statement over "
          "`length('k'||(1+i%1000))` (`loop_baseline`, whose row shows its own total per op).")
        w("")
        w("| loop case | what | µs/op | min–max | spread |")
        w("|---|---|---:|---:|---|")
        for c in loop_cases:
            st = loop_stat[c]
            w(f"| `{c}` | {desc.get(c, '')} | {fmt_us(st.median)}{' ⚑' if st.noisy else ''} | "
              f"{fmt_us(st.min)}–{fmt_us(st.max)} | {st.spread_txt()} |")
        w("")

    # ---- the Redis step's own section
    rpath = os.path.join(raw, "redis.md")
    if os.path.exists(rpath):
        with open(rpath) as f:
            for line in f.read().rstrip("\n").split("\n"):
                w(line.replace("## The Redis second level", "## The Redis second level (Redis step)"))
        w("")

    # ---- every pgbench figure
    if cases:
        w("## Every pgbench figure")
        w("")
        w("| case | what | c | TPS | µs | spread, n |")
        w("|---|---|---:|---:|---:|---|")
        for c in cases:
            for cl in clients_of(c):
                st, lt = tps(c, cl), lat(c, cl)
                d = desc.get(c, "") + (" (`-M simple`)" if c.endswith("_simple") else "")
                w(f"| `{c}` | {d} | {cl} | {fmt_int(st.median)} | {fmt_us(lt.median if lt else None)} | "
                  f"{st.spread_txt()} |")
        w("")

    # ---- raw data
    w("## Raw data")
    w("")
    rel = os.path.relpath(raw, out_dir)
    w(f"In [`{rel}/`]({rel}/): each harness run's rows (`<fp>-<run>.tsv`), metadata (`.meta`), exact commands "
      "and server configs (`.commands`), the full pgbench, redis-benchmark and psql output (`.log`); "
      "`scripts/` (the generated size cases), `console.txt`, `suite.info`, `memory.tsv`/`memory.log`, "
      "`redis.tsv`/`redis.log`/`redis_inval.tsv`, and `figures.tsv` (every figure of this report, one per line). "
      "The charts' data and gnuplot scripts are next to the PNGs in `charts/`.")
    if runs:
        w("")
        w("### Per-sample values (TPS; ⚑x% = foreign CPU above the limit during that sample)")
        w("")
        w("| case | c | " + " | ".join(f"`{r['id']}`" for r in runs) + " |")
        w("|---|---:|" + "---:|" * n)
        for c in cases:
            for cl in clients_of(c):
                vals = []
                for t in per_run:
                    x = t.get((c, cl))
                    vals.append("n/a" if x is None else
                                fmt_int(x[0]) + (f" ⚑{x[3]:.0f}%" if x[3] is not None and x[3] > fmax else ""))
                w(f"| `{c}` | {cl} | " + " | ".join(vals) + " |")
        for c in loop_cases:
            vals = []
            for lp in per_run_loop:
                x = lp.get(c)
                vals.append("n/a" if x is None else
                            fmt_us(x[0]) + " µs" + (f" ⚑{x[2]:.0f}%" if x[2] is not None and x[2] > fmax else ""))
            w(f"| `{c}` | loop | " + " | ".join(vals) + " |")
    w("")

    with open(a.out, "w") as f:
        f.write("\n".join(out))
    with open(os.path.join(raw, "figures.tsv"), "w") as f:
        f.write("figure\tclients\tmedian\tmin\tmax\tspread_pct\tn\tnoisy\tunit\top\ttarget\tstatus\n")
        for row in figures:
            f.write("\t".join(row) + "\n")


if __name__ == "__main__":
    main()
