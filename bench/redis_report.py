#!/usr/bin/env python3
"""Markdown section for the Redis step (bench/redis.sh): medians over reps of ratios
computed within each rep, with their spread, against issue 4's targets.

Usage: redis_report.py redis.tsv redis_inval.tsv VALUE_BYTES [redis_checks.tsv] > redis.md
"""
import csv
import os
import statistics
import sys


def spread(xs):
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m * 100 if m else 0.0


def main():
    tsv, inval, vlen = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = list(csv.DictReader(open(tsv), delimiter="\t"))
    by = {}
    for r in rows:
        by.setdefault((r["rep"], r["case"], r["clients"]), r)
    reps = sorted({r["rep"] for r in rows}, key=int)

    def val(rep, case, c, field):
        r = by.get((rep, case, str(c)))
        return float(r[field]) if r and r[field] else None

    out = []
    w = out.append
    w("## The Redis second level")
    w("")
    w(f"Made by `bench/redis.sh`: one redis-server and two PostgreSQL clusters with qcache, all on "
      f"127.0.0.1 (TCP), {len(reps)} rep(s); values of {vlen} bytes of JSON. Ratios are computed within "
      "each rep; the table gives the median over reps and the spread ((max − min) / median).")
    w("")
    w("| figure | value | spread | target | status |")
    w("|---|---:|---:|---|---|")

    l2 = []
    parts = []
    for rep in reps:
        a, g, s = val(rep, "l2_hit", 1, "lat_ms"), val(rep, "redis_get", 1, "lat_ms"), val(rep, "select1", 1, "lat_ms")
        if None not in (a, g, s):
            l2.append(a / (g + s))
            parts.append((a, g, s))
    if l2:
        m = statistics.median(l2)
        a, g, s = (statistics.median(p[i] for p in parts) for i in range(3))
        w(f"| L2 hit latency / (raw Redis GET + `SELECT 1`), -c 1 | {m:.2f} "
          f"({a * 1000:.0f} µs / ({g * 1000:.0f} µs + {s * 1000:.0f} µs)) | {spread(l2):.0f}% | ≤ 1.5 | "
          f"{'met' if m <= 1.5 else '**MISSED**'} |")
    for c in (1, 8):
        xs = []
        for rep in reps:
            d, n = val(rep, "get_down", c, "tps"), val(rep, "get_nourl", c, "tps")
            if d and n:
                xs.append(d / n)
        if xs:
            m = statistics.median(xs)
            w(f"| qcache_get with Redis down (breaker open) / without Redis, -c {c} | {m:.2f} | "
              f"{spread(xs):.0f}% | ≥ 0.9 | {'met' if m >= 0.9 else '**MISSED**'} |")
    for line in open(inval):
        f = line.rstrip("\n").split("\t")
        if len(f) == 5:
            kind = "key" if f[0] == "inval_key" else "tag"
            w(f"| cross-node {kind} invalidation, call on B until gone from A's L1 ({f[1]} samples) | "
              f"p50 {float(f[2]):.2f} ms, p99 {float(f[3]):.2f} ms, max {float(f[4]):.2f} ms | | report | |")
    w("")
    w("| case | clients | TPS (median) | latency ms (median) | what |")
    w("|---|---:|---:|---:|---|")
    what = {
        "select1": "`SELECT 1`, the round-trip floor",
        "l2_hit": "qcache_get served by Redis (L1 off in the session: `qcache.l1_ttl = 0`)",
        "redis_get": "redis-benchmark GET of the same size",
        "get_nourl": "qcache_get L1 hit, `qcache.redis_url = ''`",
        "get_down": "qcache_get L1 hit, Redis unreachable (breaker open)",
        "set_t1": "qcache_set of the same size with 1 tag (L1 and Redis)",
        "set_t4": "the same with 4 tags",
        "set_t32": "the same with 32 tags",
    }
    for case in ("select1", "l2_hit", "redis_get", "get_nourl", "get_down", "set_t1", "set_t4", "set_t32"):
        for c in (1, 8):
            ts = [val(rep, case, c, "tps") for rep in reps]
            ls = [val(rep, case, c, "lat_ms") for rep in reps]
            ts = [x for x in ts if x is not None]
            ls = [x for x in ls if x is not None]
            if ts:
                w(f"| `{case}` | {c} | {statistics.median(ts):,.0f} | {statistics.median(ls):.3f} | {what[case]} |")
    w("")
    if len(sys.argv) > 4:
        chk = list(csv.DictReader(open(sys.argv[4]), delimiter="\t"))
        tx = sum(int(r["l2_hit_transactions"] or 0) for r in chk)
        l1 = sum(int(r["l1_hits"] or 0) for r in chk)
        l2 = sum(int(r["l2_hits"] or 0) for r in chk)
        if tx:
            w(f"Check of the `l2_hit` case, from `qcache_stats` around it: {tx:,} gets, {l2:,} L2 hits "
              f"({100 * l2 / tx:.1f}%) and {l1:,} L1 hits"
              + (": every get was served by Redis." if l2 >= tx and l1 == 0 else
                 ": **not every get was served by Redis**; the L2 figures above are not pure L2 hits."))
            w("")
    ppath = os.path.join(os.path.dirname(os.path.abspath(tsv)), "redis_parse_us.txt")
    if os.path.exists(ppath):
        w(f"Parsing one value ({vlen} bytes of JSON) into jsonb inside a backend: "
          f"{open(ppath).read().strip()} µs (median of 3 loops of 20,000).")
        w("")
    w("An L2 hit costs one Redis round trip (a Lua script that checks the value's stamps) on top of "
      "the SQL call, and parsing the JSON text into jsonb. The cross-node figure includes the dblink "
      "call that makes the invalidation on B.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
