#!/usr/bin/env python3
"""Write the qcache benchmark report from one suite run's raw data (stdlib only).

  python3 bench/report.py --raw-dir bench/results/raw/<tag> --out bench/results/<date>.md

Reads, in --raw-dir:
  <fp>-<run>.tsv / .meta   rows and metadata of each peers-harness run (bench/peers/run.sh);
                           every harness run is one sample; runs of the latest fingerprint are used
  memory.tsv               the memory step (bench/memory.sh), if present
  redis.md                 the Redis step (bench/redis.sh), if present, included as is
  suite.info               what bench/run.sh recorded (command, qcache revision, knobs)
Writes --out (markdown) and <raw-dir>/figures.tsv (one line per figure, for charts).

Every figure is the median over runs, with its spread (max-min)/median; ratios are computed
within each run (numerator and baseline measured minutes apart on the same servers), then the
median is taken. A sample during which processes outside the benchmark used more than
--foreign-max % of a core is left out, unless every sample of that figure was disturbed (then
all are used and the figure is flagged "noisy").

To add a figure: add a line to TPS_ORDER, RATIOS or LOOPS below; cases this file does not name
still appear in the TPS and loop tables.
"""
import argparse
import csv
import glob
import os
import statistics

# Order of the pgbench cases in the TPS table (others follow in harness order).
TPS_ORDER = ["pg_select1", "fn_sql_const", "fn_plpgsql_const", "unlogged_kv", "pgmemcache_get",
             "qcache_get", "qcache_mixed", "qcache_set",
             "fn_agg_const", "qcache_fetch_agg", "pgpool_agg",
             "fn_agg_const_simple", "qcache_fetch_agg_simple", "pgpool_agg_simple",
             "upd_plain", "upd_watched_0", "upd_watched_100", "upd_watched_10000"]

# The watched UPDATE may cost at most 1.3 times the plain one (issue 3): TPS ratio >= 1/1.3.
UPD_TARGET = round(1 / 1.3, 3)

# (label, numerator case, baseline case, op, target, clients the target applies to (None: all),
#  where the target comes from).  target may also be a dict {clients: target}: then it applies
#  to those client counts only, each with its own value.
RATIOS = [
    ("qcache_get / pg_select1", "qcache_get", "pg_select1", ">=", 0.9, None,
     "issue 2: a 1 KB hit at ≥ 0.9× `SELECT 1`, at -c 1 and -c 8"),
    ("qcache_get / unlogged_kv", "qcache_get", "unlogged_kv", ">", 1.0, None,
     "issue 5: ahead of an unlogged table at every client count"),
    ("qcache_get / pgmemcache_get", "qcache_get", "pgmemcache_get", ">", 1.0, None,
     "issue 5: ahead of pgmemcache at every client count"),
    ("qcache_mixed / qcache_get", "qcache_mixed", "qcache_get", ">=", 0.85, None,
     "issue 2: 90% get + 10% set at ≥ 0.85× pure gets (the spec states it for 8 clients)"),
    ("qcache_set / qcache_get", "qcache_set", "qcache_get", None, None, None, "information"),
    ("qcache_get / fn_sql_const", "qcache_get", "fn_sql_const", None, None, None,
     "information: against the floor for returning 1 KB (a constant folded at plan time)"),
    ("qcache_get / fn_plpgsql_const", "qcache_get", "fn_plpgsql_const", None, None, None,
     "information: against a function that returns a constant 1 KB jsonb"),
    # issue 3: qcache_fetch hit of the per-category aggregate (100 rows, ~8 KB jsonb)
    ("qcache_fetch_agg / fn_agg_const (prepared)", "qcache_fetch_agg", "fn_agg_const", ">=", 0.9, None,
     "issue 3: a qcache_fetch hit of the aggregate at ≥ 0.9× a SQL function returning the same jsonb "
     "as a constant (the floor for sending this payload)"),
    ("qcache_fetch_agg / fn_agg_const (simple)", "qcache_fetch_agg_simple", "fn_agg_const_simple", ">=", 0.9,
     None, "issue 3: the same, -M simple"),
    ("qcache_fetch_agg / pgpool_agg (prepared)", "qcache_fetch_agg", "pgpool_agg", ">=",
     {"1": 1.2, "8": 1.5}, None,
     "issue 3: ahead of pgpool-II's query cache serving the same aggregate, 1.2× at -c 1, 1.5× at -c 8"),
    ("qcache_fetch_agg / pgpool_agg (simple)", "qcache_fetch_agg_simple", "pgpool_agg_simple", ">=",
     {"1": 1.2, "8": 1.5}, None, "issue 3: the same, -M simple"),
    ("qcache_fetch_agg simple / prepared", "qcache_fetch_agg_simple", "qcache_fetch_agg", None, None, None,
     "information: what the simple protocol (parse and plan per call) costs a hit"),
    ("fn_agg_const / pg_select1", "fn_agg_const", "pg_select1", None, None, None,
     "information: what sending the aggregate's payload (jsonb to text, ~6.5 KB) adds to the bare round trip"),
    ("pgpool_agg_simple / pg_select1", "pgpool_agg_simple", "pg_select1", None, None, None,
     "information: pgpool's simple-protocol hit against PostgreSQL's bare `SELECT 1` round trip "
     "(prepared); a qcache_fetch answer costs at least that round trip plus the payload"),
    # issue 3: UPDATE of one row, watched (qcache_watch) vs plain
    ("upd_watched_0 / upd_plain", "upd_watched_0", "upd_plain", ">=", UPD_TARGET, None,
     "issue 3: a watched UPDATE costs ≤ 1.3× the plain one (TPS ratio ≥ 1/1.3); 0 entries on the table's tag"),
    ("upd_watched_100 / upd_plain", "upd_watched_100", "upd_plain", ">=", UPD_TARGET, None,
     "issue 3: the same, 100 entries on the table's tag when the run starts"),
    ("upd_watched_10000 / upd_plain", "upd_watched_10000", "upd_plain", ">=", UPD_TARGET, None,
     "issue 3: the same, 10,000 entries on the table's tag when the run starts"),
]


def target_for(target, cl):
    """The target at client count cl (None: no target there)."""
    if isinstance(target, dict):
        return target.get(cl)
    return target


def target_txt(op, target):
    if op is None or target is None:
        return ""
    if isinstance(target, dict):
        return ", ".join(f"c={cl}: {op} {t:g}" for cl, t in target.items())
    return f"{op} {target:g}"

# (label, loop case, op, target µs, comparison loop case, where the target comes from)
LOOPS = [
    ("qcache_get, 1 KB hit", "loop_qcache_get", "<=", 0.3, "loop_unlogged_subq",
     "issue 2: ≤ 0.3 µs over the loop's own cost (unlogged-table probe: ~0.9 µs)"),
    ("qcache_set, 1 KB value", "loop_qcache_set", "<=", 1.0, None, "issue 2: a set costs ≤ 1 µs"),
    ("qcache_get, miss", "loop_qcache_get_miss", None, None, None, "information"),
]

MEMORY_TARGET = 100.0  # bytes of overhead per entry (issue 2)

# Descriptions of the qcache cases (the harness only knows them as "extra: <file>").
DESC = {
    "qcache_get": "qcache_get of a ~1 KB value, hit, random key of 1000",
    "qcache_set": "qcache_set of a constant ~1 KB value (ttl 0), random key of 1000",
    "qcache_mixed": "90% qcache_get, 10% qcache_set (\\if on random(1,10)), random key of 1000",
    "fn_agg_const": "agg_const_sql(): SQL function returning the aggregate's jsonb as a constant (floor)",
    "qcache_fetch_agg": "qcache_fetch hit of the per-category aggregate (100 rows)",
    "pgpool_agg": "the same aggregate served by pgpool-II's query cache",
    "upd_plain": "UPDATE of one random row of 10,000, table without qcache_watch",
    "upd_watched_0": "the same UPDATE, qcache_watch on the table, 0 entries on its tag",
    "upd_watched_100": "the same, 100 entries on the table's tag at the start of the run",
    "upd_watched_10000": "the same, 10,000 entries on the table's tag at the start of the run",
    "loop_qcache_get": "qcache_get hit of a ~1 KB value",
    "loop_qcache_set": "qcache_set (replace) of a constant ~1 KB value, ttl 0",
    "loop_qcache_get_miss": "qcache_get of an absent key",
}


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
    return "n/a" if v is None else f"{v:.2f}"


def check(v, op, target):
    if op is None or v is None:
        return None
    return {">=": v >= target, ">": v > target, "<=": v <= target, "<": v < target}[op]


class Stat:
    """Median and spread of per-run samples, leaving out disturbed samples when it can."""

    def __init__(self, samples):
        # samples: list of (value, clean) over runs
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

    def spread_txt(self):
        """e.g. "±12%, n=3", "n=1 ⚑", "±5%, n=2 of 3" """
        parts = [] if self.spread is None else [f"spread {self.spread:.0f}%"]
        parts.append(f"n={len(self.vals)}" + (f" of {len(self.all)}" if self.left_out else ""))
        return ", ".join(parts) + (" ⚑" if self.noisy else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--foreign-max", type=float, default=15.0)
    a = ap.parse_args()
    raw = a.raw_dir
    suite = read_kv(os.path.join(raw, "suite.info"))

    # ---- harness runs of the latest fingerprint
    runs = []
    for path in sorted(glob.glob(os.path.join(raw, "*-*.tsv"))):
        stem = path[:-4]
        meta = read_kv(stem + ".meta")
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        runs.append({"id": meta.get("run_id", os.path.basename(stem)), "fp": meta.get("fingerprint", "?"),
                     "meta": meta, "rows": rows, "stem": stem})
    failed = sorted(glob.glob(os.path.join(raw, "*.log.failed")))
    if runs:
        fp = runs[-1]["fp"]
        other_fp = [r for r in runs if r["fp"] != fp]
        runs = [r for r in runs if r["fp"] == fp]
    else:
        fp, other_fp = None, []
    meta = runs[-1]["meta"] if runs else {}
    fmax = a.foreign_max
    # "bench-info name=value" lines that bench/qcache/setup.sql echoes into the run log
    info = {}
    if runs and os.path.exists(runs[-1]["stem"] + ".log"):
        with open(runs[-1]["stem"] + ".log", errors="replace") as f:
            for line in f:
                if line.startswith("bench-info ") and "=" in line:
                    k, v = line[len("bench-info "):].strip().split("=", 1)
                    info[k] = v

    def ok(fc):
        fc = fnum(fc)
        return fc is None or fc <= fmax

    # per run: {(case, clients): (tps, lat, clean)} and {loop case: (us, clean)}
    per_run_tps, per_run_loop = [], []
    cases, clients, loop_cases, desc = [], [], [], {}
    for r in runs:
        t, lp = {}, {}
        for row in r["rows"]:
            c = row["case"]
            base = c[:-len("_simple")] if c.endswith("_simple") else c
            desc[c] = DESC.get(c, DESC.get(base, row["desc"]))
            if row.get("mode") and row["mode"] not in ("loop", "resp", r["meta"].get("mode", "prepared")):
                desc[c] += f" (`-M {row['mode']}`)"
            if row["kind"] in ("pgbench", "redis"):
                t[(c, row["clients"])] = (fnum(row["tps"]), fnum(row["lat_us"]), ok(row.get("foreign_cpu")),
                                          fnum(row.get("foreign_cpu")))
                if c not in cases:
                    cases.append(c)
                if row["clients"] not in clients:
                    clients.append(row["clients"])
            elif row["kind"] == "loop":
                lp[c] = (fnum(row["lat_us"]), ok(row.get("foreign_cpu")), fnum(row.get("foreign_cpu")))
                if c not in loop_cases:
                    loop_cases.append(c)
        per_run_tps.append(t)
        per_run_loop.append(lp)
    clients.sort(key=int)
    cases = [c for c in TPS_ORDER if c in cases] + [c for c in cases if c not in TPS_ORDER]
    n = len(runs)

    figures = []  # rows of figures.tsv

    def fig(name, cl, st, unit, op=None, target=None, status=None):
        figures.append([name, cl, "" if st.median is None else f"{st.median:.6g}",
                        "" if st.min is None else f"{st.min:.6g}", "" if st.max is None else f"{st.max:.6g}",
                        "" if st.spread is None else f"{st.spread:.1f}", str(len(st.vals)),
                        "1" if st.noisy else "0", unit, op or "", "" if target is None else str(target),
                        {True: "met", False: "missed", None: ""}[status]])

    def status_txt(st, op, target):
        s = check(st.median, op, target)
        if s is None:
            return "–", None
        txt = "met" if s else "**MISSED**"
        if st.noisy:
            txt += " (noisy ⚑)"
        return txt, s

    tps_stat = {}
    for c in cases:
        for cl in clients:
            samples = [(t[(c, cl)][0], t[(c, cl)][2]) for t in per_run_tps if (c, cl) in t]
            if samples:
                tps_stat[(c, cl)] = Stat(samples)
                fig(f"tps:{c}", cl, tps_stat[(c, cl)], "tps")
    lat_stat = {}
    for c in cases:
        for cl in clients:
            samples = [(t[(c, cl)][1], t[(c, cl)][2]) for t in per_run_tps if (c, cl) in t]
            if samples:
                lat_stat[(c, cl)] = Stat(samples)

    ratio_stat = {}
    for label, num, den, op, target, only, _ in RATIOS:
        for cl in clients:
            samples = []
            for t in per_run_tps:
                if (num, cl) in t and (den, cl) in t and t[(num, cl)][0] and t[(den, cl)][0]:
                    samples.append((t[(num, cl)][0] / t[(den, cl)][0], t[(num, cl)][2] and t[(den, cl)][2]))
            if samples:
                st = Stat(samples)
                tg = target_for(target, cl)
                applies = (only is None or cl in only) and tg is not None
                ratio_stat[(label, cl)] = st
                fig(f"ratio:{num}/{den}", cl, st, "ratio", op if applies else None,
                    tg if applies else None, check(st.median, op, tg) if applies else None)

    loop_stat = {}
    for c in loop_cases:
        samples = [(lp[c][0], lp[c][1]) for lp in per_run_loop if c in lp]
        loop_stat[c] = Stat(samples)
    for label, c, op, target, cmp_case, _ in LOOPS:
        if c in loop_stat:
            fig(f"loop_us:{c}", "1", loop_stat[c], "us/op", op, target, check(loop_stat[c].median, op, target))

    # ---- memory
    mem_rows = []
    mpath = os.path.join(raw, "memory.tsv")
    if os.path.exists(mpath):
        with open(mpath) as f:
            mem_rows = list(csv.DictReader(f, delimiter="\t"))
    for m in mem_rows:
        ov = fnum(m["overhead_per_entry"])
        st = Stat([(ov, True)])
        fig(f"memory_overhead:{m['entry_bytes']}B:max_entries={m['max_entries']}", "", st, "bytes",
            "<=", MEMORY_TARGET, check(ov, "<=", MEMORY_TARGET))

    # ================================================================ markdown
    out = []
    w = out.append
    date = suite.get("date") or meta.get("date", "?")
    w(f"# qcache benchmark, {date}")
    w("")
    mode = suite.get("mode", "?")
    if mode == "quick":
        w("> **Quick mode** (`--quick`): short pgbench runs, one sample, fewer cases. A smoke test of the "
          "suite, not figures to quote.")
        w("")
    w(f"Made by `{suite.get('command', 'bash bench/run.sh')}` (mode {mode}). "
      f"qcache {suite.get('qcache_rev', '?')}{' with uncommitted changes' if suite.get('qcache_dirty') == '1' else ''}, "
      f"built and installed by the suite from `{suite.get('qcache_src', '?')}`.")
    if meta:
        w(f"Machine: nproc={meta.get('nproc')}, {meta.get('cpu')}, {meta.get('mem')} RAM, {meta.get('os')}, "
          f"kernel {meta.get('kernel')}; clients and servers share these cores. "
          f"PostgreSQL {meta.get('postgres')}, pgmemcache {meta.get('pgmemcache')}, {meta.get('memcached')}.")
        w("")
        w(f"pgbench `-n -M {meta.get('mode')} -T {meta.get('T')}` over TCP 127.0.0.1 at -c {{{meta.get('clients')}}} "
          f"(-j = min(c, {meta.get('jobs')})); {meta.get('nkeys')} keys of ~{meta.get('doc_bytes')}-byte JSON "
          f"(text form) in each cache; in-SQL loops of {meta.get('loop_n')} ops, median of "
          f"{meta.get('loop_reps')} timings; the cases named `*_simple` run with `-M simple`. "
          f"**{n} run(s)** of the harness (config fingerprint `{fp}`): "
          + ", ".join(f"`{r['id']}` ({r['meta'].get('elapsed_s', '?')} s, {r['meta'].get('quiet_wait_s', '?')} s "
                      f"waiting for quiet, max foreign CPU "
                      f"{max([fnum(x.get('foreign_cpu')) or 0 for x in r['rows']] or [0]):.0f}%)" for r in runs)
          + ".")
        if failed:
            w(f"{len(failed)} harness run(s) failed and are not counted: "
              + ", ".join(f"`{os.path.basename(p)}`" for p in failed) + ".")
        if other_fp:
            w(f"{len(other_fp)} run(s) of another configuration in the raw dir were ignored.")
    else:
        w("")
        w("**No harness run completed**: no throughput or loop figures.")
    w("")

    # ---- targets summary
    w("## Targets")
    w("")
    w("Median over runs (spread = (max − min) / median over runs, n = runs used). "
      f"⚑ noisy: every sample of that figure ran while other processes used > {fmax:.0f}% of a core.")
    w("")
    w("| figure | " + " | ".join(f"c={cl}" for cl in clients) + " | target | status | source |")
    w("|---|" + "---:|" * len(clients) + "---|---|---|")
    for label, num, den, op, target, only, src in RATIOS:
        if op is None or not any((label, cl) in ratio_stat for cl in clients):
            continue
        cells, stats = [], []
        for cl in clients:
            st = ratio_stat.get((label, cl))
            if st is None:
                cells.append("n/a")
                continue
            cells.append(f"{fmt_ratio(st.median)} ({st.spread_txt()})")
            if (only is None or cl in only) and target_for(target, cl) is not None:
                stats.append((cl, st))
        sts = [(cl, status_txt(st, op, target_for(target, cl))) for cl, st in stats]
        status = ", ".join(f"c={cl}: {t}" for cl, (t, _) in sts) if sts else "–"
        w(f"| {label} | " + " | ".join(cells) + f" | {target_txt(op, target)} | {status} | {src} |")
    for label, c, op, target, cmp_case, src in LOOPS:
        if op is None or c not in loop_stat:
            continue
        st = loop_stat[c]
        t, _ = status_txt(st, op, target)
        cmp_txt = ""
        if cmp_case in loop_stat and loop_stat[cmp_case].median:
            cmp_txt = f"; {cmp_case}: {fmt_us(loop_stat[cmp_case].median)} µs"
        cell = f"{fmt_us(st.median)} µs ({st.spread_txt()}){cmp_txt}"
        w(f"| in-SQL {label} | {cell} |" + " |" * (len(clients) - 1) + f" {op} {target} µs | {t} | {src} |")
    for m in mem_rows:
        ov = fnum(m["overhead_per_entry"])
        s = check(ov, "<=", MEMORY_TARGET)
        cell = (f"{int(m['entries_fit']):,} entries of {m['entry_bytes']} B fit in "
                f"{int(m['memory_bytes']) // 1048576} MB (max_entries {int(m['max_entries']):,}): "
                f"{fnum(m['bytes_per_entry']):.1f} B/entry, overhead **{ov:.1f} B**")
        w(f"| memory overhead per entry | {cell} |" + " |" * (len(clients) - 1)
          + f" <= {MEMORY_TARGET:.0f} B | {'met' if s else '**MISSED**'} | issue 2 |")
    w("")

    # ---- what the reader needs to judge a missed target
    missed = []
    for label, num, den, op, target, only, src in RATIOS:
        for cl in clients:
            st = ratio_stat.get((label, cl))
            tg = target_for(target, cl)
            if op is None or st is None or tg is None or (only is not None and cl not in only):
                continue
            if check(st.median, op, tg) is False:
                per_run = []
                for r, t in zip(runs, per_run_tps):
                    if (num, cl) in t and (den, cl) in t:
                        x, y = t[(num, cl)], t[(den, cl)]
                        per_run.append(f"`{r['id']}`: {num} {fmt_int(x[0])} TPS (foreign CPU "
                                       f"{'?' if x[3] is None else f'{x[3]:.0f}%'}), {den} {fmt_int(y[0])} TPS "
                                       f"(foreign CPU {'?' if y[3] is None else f'{y[3]:.0f}%'})")
                missed.append(f"- {label} at c={cl}: {fmt_ratio(st.median)}, target {op} {tg:g}"
                              + (" — every sample disturbed by other load, re-run on a quiet machine"
                                 if st.noisy else "") + ". " + "; ".join(per_run) + ".")
    for label, c, op, target, cmp_case, src in LOOPS:
        st = loop_stat.get(c)
        if op is not None and st is not None and check(st.median, op, target) is False:
            missed.append(f"- in-SQL {label}: {fmt_us(st.median)} µs, target {op} {target} µs"
                          + (" — every sample disturbed by other load" if st.noisy else "") + ".")
    if missed:
        w("**Missed targets**, with the samples behind them (foreign CPU = % of a core used by other "
          "processes during the sample):")
        w("")
        out.extend(missed)
        w("")

    # ---- TPS table
    if cases:
        w("## Throughput (pgbench)")
        w("")
        w("TPS median over runs, with spread; µs = pgbench's average latency (median over runs).")
        w("")
        w("| case | what | " + " | ".join(f"TPS c={cl} | µs c={cl} | spread c={cl}" for cl in clients) + " |")
        w("|---|---|" + "---:|---:|---|" * len(clients))
        for c in cases:
            cells = []
            for cl in clients:
                st = tps_stat.get((c, cl))
                lt = lat_stat.get((c, cl))
                if st is None:
                    cells += ["n/a", "n/a", ""]
                else:
                    cells += [fmt_int(st.median) + (" ⚑" if st.noisy else ""),
                              fmt_us(lt.median if lt else None), st.spread_txt()]
            w(f"| `{c}` | {desc.get(c, '')} | " + " | ".join(cells) + " |")
        w("")

    # ---- all ratios
    if ratio_stat:
        w("## Ratios (computed within each run, then the median over runs)")
        w("")
        w("| ratio | " + " | ".join(f"c={cl}" for cl in clients) + " | target | meaning |")
        w("|---|" + "---:|" * len(clients) + "---|---|")
        for label, num, den, op, target, only, src in RATIOS:
            if not any((label, cl) in ratio_stat for cl in clients):
                continue
            cells = []
            for cl in clients:
                st = ratio_stat.get((label, cl))
                cells.append("n/a" if st is None else
                             f"{fmt_ratio(st.median)} [{fmt_ratio(st.min)}–{fmt_ratio(st.max)}]"
                             + (" ⚑" if st.noisy else ""))
            w(f"| {label} | " + " | ".join(cells) + f" | {target_txt(op, target)} | {src} |")
        w("")
        w("[min–max] over runs. A ratio of 1 means as fast as the baseline in the same run.")
        w("")

    # ---- loops
    if loop_stat:
        w("## In-SQL cost per operation (one backend, no client round trip)")
        w("")
        w("`SELECT count(expr) FROM generate_series(1, N) i`, minus the same statement over "
          "`length('k'||(1+i%1000))` (loop_baseline, whose row shows its own total per op).")
        w("")
        w("| loop case | what | µs/op | min–max | spread |")
        w("|---|---|---:|---:|---|")
        for c in loop_cases:
            st = loop_stat[c]
            w(f"| `{c}` | {desc.get(c, '')} | {fmt_us(st.median)}{' ⚑' if st.noisy else ''} | "
              f"{fmt_us(st.min)}–{fmt_us(st.max)} | {st.spread_txt()} |")
        w("")

    # ---- the Redis level (bench/redis.sh writes its own section)
    rpath = os.path.join(raw, "redis.md")
    if os.path.exists(rpath):
        with open(rpath) as f:
            for line in f.read().rstrip("\n").split("\n"):
                w(line)
        w("")

    # ---- memory
    if mem_rows:
        w("## Memory per entry")
        w("")
        m0 = mem_rows[0]
        w(f"A throw-away cluster with `qcache.memory = {int(m0['memory_bytes']) // 1048576}MB` is filled with "
          f"entries of exactly N bytes, until the first eviction. **An N-byte entry** is a key of "
          f"{m0['key_bytes']} bytes (`'m' || lpad(i::text, {int(m0['key_bytes']) - 1}, '0')`) plus a jsonb "
          f"string value whose VARSIZE (`pg_column_size`) is N − {m0['key_bytes']} bytes; no tags, ttl 0. "
          "These are the bytes qcache must keep; everything else is overhead: the entry header, the "
          "allocator's size-class rounding and metadata, and the bucket array (8 bytes per bucket, "
          "`max_entries` rounded up to a power of 2, allocated up front out of `qcache.memory`).")
        w("")
        w("bytes/entry = qcache.memory / entries that fit; overhead = bytes/entry − N. "
          "'accounted' = `bytes_used` / entries (what qcache_stats charges: header + key + value + the "
          "index share, without the allocator's rounding).")
        w("")
        w("| N | max_entries | entries that fit | bytes/entry | overhead/entry | accounted B/entry | limited by | target ≤ 100 B |")
        w("|---:|---:|---:|---:|---:|---:|---|---|")
        for m in mem_rows:
            ov = fnum(m["overhead_per_entry"])
            w(f"| {m['entry_bytes']} | {int(m['max_entries']):,} | {int(m['entries_fit']):,} | "
              f"{fnum(m['bytes_per_entry']):.1f} | {ov:.1f} | {fnum(m['accounted_bytes_per_entry']):.1f} | "
              f"{m['limited_by']} ({m['stop']}) | {'met' if ov <= MEMORY_TARGET else '**MISSED**'} |")
        w("")
        w("The bucket array is sized by `qcache.max_entries`, not by what is stored: with a max_entries "
          "far above the entries that fit, each entry also carries a share of empty buckets. The row "
          "whose max_entries is the smallest power of 2 above the entries that fit is the configuration "
          "to quote for small entries.")
        w("")

    # ---- how to read
    w("## How to read this")
    w("")
    w("- `pg_select1` (`SELECT 1`) is the physical floor: a prepared statement's round trip over "
      "TCP with nothing to do. No cache served through SQL can beat it; a ratio to it says how much of "
      "the round trip the cache adds (0.9 = the cache costs 10% on top of the bare protocol).")
    w("- `fn_sql_const` (a constant 1 KB jsonb folded at plan time) and `fn_plpgsql_const` (a "
      "function call returning a constant 1 KB jsonb) are the ideal caches: the cost of shipping 1 KB "
      "with nothing looked up.")
    w("- `unlogged_kv` (an unlogged table used as a cache, one index probe) and `pgmemcache_get` "
      "(memcached through pgmemcache) are what an application would use instead; a ratio above 1 "
      "means qcache serves more requests per second than that alternative on this machine.")
    w("- `qcache_mixed` / `qcache_get`: what 10% writes cost the read throughput.")
    w("- The in-SQL loops remove the client round trip: they are the CPU cost of the call itself "
      "inside a backend (e.g. when qcache_get is called from a plpgsql function or a query).")
    w("- **Cached aggregate (issue 3).** `qcache_fetch_agg` calls `qcache_fetch('agg', '<query>', 0)` on "
      "the per-category aggregate of `peers/scripts/agg.sql` (100k products, 100 result rows; "
      f"{meta.get('agg_exec_ms', '?')} ms uncached here), stored once by `qcache/setup.sql`: every call is "
      f"a hit returning a jsonb array of {info.get('agg_jsonb_bytes', '?')} bytes "
      f"({info.get('agg_text_bytes', '?')} bytes as text). `fn_agg_const` returns the same jsonb from an "
      "IMMUTABLE SQL function whose body is that literal, folded at plan time: the floor for sending "
      "this payload. `pgpool_agg` is the same aggregate through pgpool-II with its shared-memory query "
      f"cache on (hits after the first; auto invalidation check: {meta.get('pgpool_invalidation', 'not run')}). "
      "The `_simple` variants run with `-M simple`, where every call is parsed and planned: for "
      "`fn_agg_const_simple` planning inlines the function and parses its jsonb literal again on each "
      "call, so in simple mode that baseline is no longer a pure send-the-bytes floor.")
    w("- **Trigger cost (issue 3).** `upd_plain` runs `UPDATE upd_plain SET v = v + 1 WHERE id = "
      ":id` (one random row of 10,000, HOT); `upd_watched_N` runs the same UPDATE on an identical table "
      "with `qcache_watch` on it (a statement trigger that queues the tag `table:public.<table>`, stamped "
      "when the transaction commits). N = entries tagged with that table's tag **at the start of each "
      "run**: the first transaction of client 0 stores them (`bench_upd_populate`, "
      f"{info.get('populate_10000_ms', '?')} ms for 10,000) while the other clients wait 100 ms (same "
      "first transaction in `upd_plain`, which stores none). The first UPDATE's commit makes them all "
      "stale at once (one stamp per tag, no scan of the entries) and the sweeper reclaims them in the "
      "background within about a second, on the same 2 cores. So `upd_watched_N / upd_plain` is the cost "
      "of the trigger and the commit stamp, plus the one-off reclaim of N entries and the sweeper's scan "
      "after each stamp; with this mechanism no UPDATE after the first can find live entries on the "
      "tag, since keeping N live would mean re-storing them after every UPDATE, i.e. measuring sets. "
      "The cluster runs with `synchronous_commit = off` and `fsync = off`, so a plain UPDATE costs no "
      "WAL flush: the trigger's share is larger than it would be on a durable server.")
    w("- With 2 cores shared by pgbench and the servers, the c=8 figures are CPU-bound totals for "
      "client plus server. Figures marked ⚑ ran while other processes loaded the machine.")
    w("")
    w("## Raw data")
    w("")
    rel = os.path.relpath(raw, os.path.dirname(os.path.abspath(a.out)))
    w(f"In `{rel}/`: each harness run's rows (`<fp>-<run>.tsv`), metadata (`.meta`), exact commands and "
      "server configs (`.commands`), full pgbench/psql output (`.log`); `peers.md` (the harness's own "
      "summary of these runs), `console.txt` (the suite's console), `build.txt`, `suite.info`, "
      "`memory.tsv`, `memory.log`, `memory-postgres.log`, and `figures.tsv` (every figure of this "
      "report, one per line, for charts).")
    if runs:
        w("")
        w("### Per-run samples")
        w("")
        w("| case | c | " + " | ".join(f"`{r['id']}`" for r in runs) + " |")
        w("|---|---:|" + "---:|" * n)
        for c in cases:
            for cl in clients:
                vals = []
                for t in per_run_tps:
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
