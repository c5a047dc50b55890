#!/usr/bin/env python3
"""The benchmark's report: WORK_DIR/results (written by bench/run.sh, bench/cold_start.py and
bench/zip_sizes.sh) to markdown tables on standard output. Stdlib only.

usage: summarize.py WORK_DIR

Sections, each printed when its input exists:
  results/runs.tsv        per rows and format, every engine's median wall, CPU and peak RSS, the
                          ratios to Tessera, the targets (wall at most 0.5x DuckDB's, peak RSS
                          at most 256 MiB, peak at 10M rows at most 1.25x the peak at 1M), and the
                          cost line (Lambda GB-seconds and dollars per TB of raw input)
  results/verify_*.txt    verify_outputs.py's verdicts
  results/cold_start.tsv  process start to the first `invocation/next`, per function (< 20 ms)
  results/zip_sizes.tsv   each function's Lambda zip (arm64) against 10 MB
"""
import glob
import json
import math
import os
import statistics
import sys
from collections import defaultdict

# AWS Lambda prices, arm64, us-east-1, first tier (the first 7.5 billion GB-seconds a month):
# https://aws.amazon.com/lambda/pricing/ (see docs/benchmark-harness.md for the date).
PRICE_GB_SECOND = 0.0000133334
PRICE_PER_REQUEST = 0.20 / 1_000_000
# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
MB_PER_VCPU = 1769
LAMBDA_MAX_MB = 10240
# A memory size is rounded up to a multiple of this (Lambda accepts any MB from 128 to 10,240).
MEMORY_STEP_MB = 128
TB = 10**12
# Lambda invocations per raw file: Tessera's chain is five functions (ingest, clean,
# contract-check, aggregate, catalog-register), a Python peer is one function.
REQUESTS_PER_FILE = {"tessera": 5}

WALL_TARGET_VS_DUCKDB = 0.5
RSS_TARGET_MIB = 256
GROWTH_TARGET_10M = 1.25
COLD_START_TARGET_MS = 20
ZIP_TARGET_BYTES = 10 * 1000 * 1000


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_range(xs, nd=2):
    if not xs:
        return "n/a"
    f = "%%.%df" % nd
    if len(xs) == 1:
        return f % xs[0]
    return (f + " (" + f + "–" + f + ")") % (med(xs), min(xs), max(xs))


def load_tsv(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        rows = []
        for line in f:
            v = line.rstrip("\n").split("\t")
            if len(v) == len(head):
                rows.append(dict(zip(head, v)))
    return rows


def load_runs(path):
    rows = []
    for r in load_tsv(path):
        for k in ("wall_s", "user_s", "sys_s"):
            r[k] = float(r[k])
        r["maxrss_kb"] = int(r["maxrss_kb"])
        r["rc"] = int(r["rc"])
        r["size"] = int(r["size"])
        rows.append(r)
    return rows


class Stats:
    """One engine at one size and format, over its successful runs."""

    def __init__(self, name, runs):
        self.name = name
        self.runs = len(runs)
        ok = [r for r in runs if r["rc"] == 0]
        self.failed = self.runs - len(ok)
        self.walls = [r["wall_s"] for r in ok]
        self.wall = med(self.walls)
        self.cpu = med([r["user_s"] + r["sys_s"] for r in ok])
        self.rss_mib = med([r["maxrss_kb"] / 1024 for r in ok])
        self.rss_max_mib = max([r["maxrss_kb"] / 1024 for r in ok], default=float("nan"))


def engine_stats(runs):
    """{(size, format): {engine: Stats}} of the `run` lines."""
    groups = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r["kind"] == "run":
            groups[(r["size"], r["format"])][r["name"]].append(r)
    return {k: {e: Stats(e, rs) for e, rs in v.items()} for k, v in groups.items()}


def ratio(a, b):
    if b and not math.isnan(a) and not math.isnan(b):
        return "%.2f" % (a / b)
    return "–"


def lambda_memory_mb(peak_mib):
    """The Lambda memory size a process of this peak RSS needs: rounded up to a multiple of
    MEMORY_STEP_MB, at least 128; None when it does not fit Lambda's largest."""
    mb = max(128, MEMORY_STEP_MB * math.ceil(peak_mib / MEMORY_STEP_MB))
    return mb if mb <= LAMBDA_MAX_MB else None


def cost_per_tb(engine, input_bytes, wall_s, cpu_s, peak_mib):
    """Lambda cost of processing 1 TB (10^12 bytes) of raw input as files of this size.

    Returns a dict: memory_mb, files, gb_s (at the measured wall time), dollars, and the same at
    Lambda's CPU share (cpu_gb_s, cpu_dollars): with memory M the function has M/1769 vCPU, so
    a run of C CPU-seconds lasts at least C / (M/1769) seconds."""
    mem = lambda_memory_mb(peak_mib)
    if mem is None or not input_bytes or math.isnan(wall_s):
        return None
    files = TB / input_bytes
    requests = files * REQUESTS_PER_FILE.get(engine, 1)
    gb_s = files * (mem / 1024) * wall_s
    vcpus = mem / MB_PER_VCPU
    cpu_duration = max(wall_s, cpu_s / vcpus)
    cpu_gb_s = files * (mem / 1024) * cpu_duration
    return {
        "memory_mb": mem,
        "files": files,
        "requests": requests,
        "duration_s": wall_s,
        "gb_s": gb_s,
        "dollars": gb_s * PRICE_GB_SECOND + requests * PRICE_PER_REQUEST,
        "cpu_duration_s": cpu_duration,
        "cpu_gb_s": cpu_gb_s,
        "cpu_dollars": cpu_gb_s * PRICE_GB_SECOND + requests * PRICE_PER_REQUEST,
    }


def pass_fail(ok):
    return "**PASS**" if ok else "**FAIL**"


def run_tables(stats, inputs):
    out = []
    p = out.append
    p("## Runs\n")
    p("Whole process (start, work, exit) under `/usr/bin/time -v`: wall seconds median (min–max) "
      "of the runs; CPU = user+sys seconds (median); peak RSS = maximum resident set size "
      "(median of the runs); ×T = the engine's figure divided by Tessera's (wall, peak RSS).\n")
    p("| rows | input | engine | wall s | CPU s | peak RSS MiB | wall ×T | RSS ×T | runs (failed) |")
    p("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for key in sorted(stats):
        size, fmt = key
        es = stats[key]
        t = es.get("tessera")
        order = sorted(es.values(), key=lambda s: (s.name != "tessera", s.wall))
        for s in order:
            p("| %s | %s | %s | %s | %.1f | %.0f | %s | %s | %d (%d) |" % (
                "{:,}".format(size), fmt, s.name, fmt_range(s.walls), s.cpu, s.rss_mib,
                ratio(s.wall, t.wall) if t else "–", ratio(s.rss_mib, t.rss_mib) if t else "–",
                s.runs, s.failed))
    p("")

    p("## Targets\n")
    lines = []
    for key in sorted(stats):
        size, fmt = key
        es = stats[key]
        t, d = es.get("tessera"), es.get("duckdb")
        where = "%s rows %s" % ("{:,}".format(size), fmt)
        if not t or math.isnan(t.wall):
            lines.append("- %s: no Tessera run, targets not evaluated" % where)
            continue
        if d and not math.isnan(d.wall):
            lines.append("- %s: wall at most %.1fx DuckDB's: Tessera %.2f s, DuckDB %.2f s "
                         "(%.2fx): %s" % (where, WALL_TARGET_VS_DUCKDB, t.wall, d.wall,
                                          t.wall / d.wall,
                                          pass_fail(t.wall <= WALL_TARGET_VS_DUCKDB * d.wall)))
        else:
            lines.append("- %s: wall at most %.1fx DuckDB's: no DuckDB run" % (
                where, WALL_TARGET_VS_DUCKDB))
        lines.append("- %s: peak RSS at most %d MiB: Tessera %.0f MiB (largest of %d runs): %s"
                     % (where, RSS_TARGET_MIB, t.rss_max_mib, t.runs - t.failed,
                        pass_fail(t.rss_max_mib <= RSS_TARGET_MIB)))
    for fmt in sorted({k[1] for k in stats}):
        small = stats.get((1_000_000, fmt), {}).get("tessera")
        big = stats.get((10_000_000, fmt), {}).get("tessera")
        if small and big:
            lines.append("- 10,000,000 rows %s: peak RSS at most %.2fx the peak at 1M: %.0f MiB "
                         "vs %.0f MiB (%.2fx): %s" % (
                             fmt, GROWTH_TARGET_10M, big.rss_max_mib, small.rss_max_mib,
                             big.rss_max_mib / small.rss_max_mib,
                             pass_fail(big.rss_max_mib <= GROWTH_TARGET_10M * small.rss_max_mib)))
    out.extend(lines)
    p("")

    p("## Cost per TB of raw input (AWS Lambda, arm64)\n")
    p("At $%.10f per GB-second (arm64, us-east-1, first tier) and $0.20 per million requests. "
      "Each engine at the memory it needs (its largest peak RSS rounded up to a multiple of "
      "%d MB) and its median wall time, for 10^12 bytes of raw input in files of this size; "
      "requests: %d per file for Tessera's chain, 1 for a Python peer. The last two columns "
      "assume the run is CPU-bound at Lambda's CPU share (%d MB per vCPU): duration at least "
      "CPU seconds / vCPUs.\n" % (PRICE_GB_SECOND, MEMORY_STEP_MB, REQUESTS_PER_FILE["tessera"],
                                  MB_PER_VCPU))
    p("| rows | input | engine | memory MB | wall s | GB-s per TB | $ per TB "
      "| CPU-share s | CPU-share $ per TB |")
    p("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for key in sorted(stats):
        size, fmt = key
        es = stats[key]
        peers = [s for s in es.values() if s.name != "tessera" and not math.isnan(s.wall)]
        chosen = []
        if "tessera" in es:
            chosen.append(es["tessera"])
        if peers:
            chosen.append(min(peers, key=lambda s: s.wall))
        for s in chosen:
            label = s.name if s.name == "tessera" else "%s (fastest peer)" % s.name
            c = cost_per_tb(s.name, inputs.get(key), s.wall, s.cpu, s.rss_max_mib)
            if c is None:
                p("| %s | %s | %s | – | – | – | – | – | – |" % (
                    "{:,}".format(size), fmt, label))
                continue
            p("| %s | %s | %s | %d | %.2f | %s | %.2f | %.2f | %.2f |" % (
                "{:,}".format(size), fmt, label, c["memory_mb"], c["duration_s"],
                "{:,.0f}".format(c["gb_s"]), c["dollars"], c["cpu_duration_s"],
                c["cpu_dollars"]))
    p("")
    return out


def stage_section(res):
    """In-process stage seconds from the reports the runs left (report_<engine>_<rows>_<format>
    _<rep>.json, `stage_seconds`), median per stage; each engine names its own stages."""
    stages = defaultdict(lambda: defaultdict(list))
    for f in glob.glob(os.path.join(res, "report_*.json")):
        try:
            with open(f, encoding="utf-8") as fh:
                rep = json.load(fh)
            engine, size, fmt, _ = os.path.basename(f)[len("report_"):-len(".json")].rsplit(
                "_", 3)
            key = (int(size), fmt, engine)
        except ValueError:
            continue
        for name, sec in (rep.get("stage_seconds") or {}).items():
            if isinstance(sec, (int, float)):
                stages[key][name].append(sec)
    if not stages:
        return []
    out = ["## In-process stage seconds (from each run's report.json, median)\n",
           "| rows | input | engine | stages |", "|---:|---|---|---|"]
    for key in sorted(stages):
        out.append("| %s | %s | %s | %s |" % (
            "{:,}".format(key[0]), key[1], key[2],
            ", ".join("%s %.2f" % (n, med(v)) for n, v in stages[key].items())))
    out.append("")
    return out


def verify_section(res):
    out = []
    vfiles = sorted(glob.glob(os.path.join(res, "verify_*.txt")))
    if not vfiles:
        return out
    out.append("## Agreement (verify_outputs.py)\n")
    out.append("```")
    for f in vfiles:
        out.append("== " + os.path.basename(f))
        for line in open(f):
            if not line.startswith("         "):
                out.append(line.rstrip("\n")[:300])
    out.append("```\n")
    return out


def cold_section(path):
    rows = load_tsv(path)
    by = defaultdict(list)
    for r in rows:
        by[r["function"]].append(float(r["ms"]))
    out = ["## Cold start: process start to the first `GET .../invocation/next`\n",
           "Median (min–max) of the runs, in milliseconds; target under %d ms. The "
           "`(baseline: curl)` row is curl asking for an event the same way: what spawning a "
           "process and the loopback server cost on this machine at that moment.\n"
           % COLD_START_TARGET_MS,
           "| function | ms | runs | target |", "|---|---:|---:|---|"]
    for fn in sorted(by):
        ms = by[fn]
        verdict = ("reference" if fn.startswith("(") else
                   pass_fail(med(ms) < COLD_START_TARGET_MS))
        out.append("| %s | %s | %d | %s |" % (fn, fmt_range(ms, 1), len(ms), verdict))
    out.append("")
    return out


def zip_section(path):
    out = ["## Lambda zips (arm64, `cargo lambda build --release --arm64`)\n",
           "| function | bytes | MiB | target < 10 MB (10,000,000 bytes) |", "|---|---:|---:|---|"]
    for r in load_tsv(path):
        b = int(r["bytes"])
        out.append("| %s | %s | %.2f | %s |" % (r["function"], "{:,}".format(b), b / 2**20,
                                                pass_fail(b < ZIP_TARGET_BYTES)))
    out.append("")
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    work = argv[1]
    res = os.path.join(work, "results")
    out = ["# Orders benchmark: Tessera and the peers\n"]
    vfile = os.path.join(res, "versions.txt")
    if os.path.exists(vfile):
        out.append("; ".join(l.strip() for l in open(vfile) if l.strip()) + "\n")
    runs_file = os.path.join(res, "runs.tsv")
    if os.path.exists(runs_file):
        inputs = {}
        ifile = os.path.join(res, "inputs.tsv")
        if os.path.exists(ifile):
            inputs = {(int(r["size"]), r["format"]): int(r["bytes"]) for r in load_tsv(ifile)}
        out.extend(run_tables(engine_stats(load_runs(runs_file)), inputs))
    out.extend(stage_section(res))
    out.extend(verify_section(res))
    if os.path.exists(os.path.join(res, "cold_start.tsv")):
        out.extend(cold_section(os.path.join(res, "cold_start.tsv")))
    if os.path.exists(os.path.join(res, "zip_sizes.tsv")):
        out.extend(zip_section(os.path.join(res, "zip_sizes.tsv")))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
