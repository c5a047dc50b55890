"""Tests of the benchmark's report: `python3 -m unittest discover -s bench` (stdlib only)."""
import contextlib
import io
import os
import tempfile
import unittest

import summarize
import timev

TIME_V = """\tCommand being timed: "python peer_duckdb.py"
\tUser time (seconds): 6.10
\tSystem time (seconds): 0.52
\tPercent of CPU this job got: 160%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:04.25
\tMaximum resident set size (kbytes): 1048576
\tExit status: 0
"""

HEAD = "kind\tname\tsize\tformat\trep\twall_s\tuser_s\tsys_s\tmaxrss_kb\trc\n"


def run_line(name, size, fmt, rep, wall, cpu, rss_mib, rc=0):
    return "run\t%s\t%d\t%s\t%d\t%.2f\t%.2f\t0.00\t%d\t%d\n" % (
        name, size, fmt, rep, wall, cpu, rss_mib * 1024, rc)


class TimeV(unittest.TestCase):
    def test_parse(self):
        wall, user, sys_, rss = timev.parse(TIME_V)
        self.assertAlmostEqual(wall, 64.25)
        self.assertAlmostEqual(user, 6.10)
        self.assertAlmostEqual(sys_, 0.52)
        self.assertEqual(rss, 1048576)

    def test_hours(self):
        wall, _, _, _ = timev.parse(
            "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03\n")
        self.assertAlmostEqual(wall, 3723)


class Cost(unittest.TestCase):
    def test_memory_sizes(self):
        self.assertEqual(summarize.lambda_memory_mb(20), 128)
        self.assertEqual(summarize.lambda_memory_mb(128), 128)
        self.assertEqual(summarize.lambda_memory_mb(128.5), 256)
        self.assertEqual(summarize.lambda_memory_mb(1000), 1024)
        self.assertEqual(summarize.lambda_memory_mb(10240), 10240)
        self.assertIsNone(summarize.lambda_memory_mb(10241))

    def test_per_tb(self):
        # 1 GB files, 10 s at 1,000 MiB peak -> 1,024 MB: 1,000 files x 1 GB x 10 s.
        c = summarize.cost_per_tb("duckdb", 10**9, 10.0, 8.0, 1000)
        self.assertEqual(c["memory_mb"], 1024)
        self.assertAlmostEqual(c["files"], 1000)
        self.assertAlmostEqual(c["gb_s"], 10000)
        self.assertAlmostEqual(c["dollars"], 10000 * 0.0000133334 + 1000 * 0.20 / 1e6)
        # At 1,024 MB the function has 1024/1769 vCPU: 8 CPU-s last 13.8 s.
        self.assertAlmostEqual(c["cpu_duration_s"], 8.0 * 1769 / 1024)
        t = summarize.cost_per_tb("tessera", 10**9, 10.0, 8.0, 1000)
        self.assertAlmostEqual(t["requests"], 5000)
        self.assertIsNone(summarize.cost_per_tb("pandas", 10**9, 10.0, 8.0, 20000))


class Report(unittest.TestCase):
    def report(self, runs, extra=None):
        with tempfile.TemporaryDirectory() as work:
            res = os.path.join(work, "results")
            os.makedirs(res)
            with open(os.path.join(res, "runs.tsv"), "w") as f:
                f.write(HEAD + "".join(runs))
            with open(os.path.join(res, "inputs.tsv"), "w") as f:
                f.write("size\tformat\tbytes\n1000000\tcsv\t236000000\n")
            for name, text in (extra or {}).items():
                with open(os.path.join(res, name), "w") as f:
                    f.write(text)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(summarize.main(["summarize.py", work]), 0)
            return out.getvalue()

    def test_ratios_targets_and_cost(self):
        runs = []
        for rep, (tw, dw) in enumerate([(2.0, 6.0), (3.0, 7.0), (2.5, 6.5)], 1):
            runs.append(run_line("tessera", 1000000, "csv", rep, tw, 3.0, 200 + rep))
            runs.append(run_line("duckdb", 1000000, "csv", rep, dw, 6.5, 1000))
            runs.append(run_line("polars", 1000000, "csv", rep, dw + 1, 7.0, 1800))
        for rep in (1, 2):
            runs.append(run_line("tessera", 10000000, "csv", rep, 25, 30, 260))
        text = self.report(runs)
        # medians 2.5 s and 6.5 s: polars 7.5 / 2.5 = 3.00, RSS 1800 / 202 = 8.91
        self.assertIn("| 1,000,000 | csv | tessera | 2.50 (2.00–3.00) | 3.0 | 202 | 1.00 | 1.00 |",
                      text)
        self.assertIn("| 1,000,000 | csv | polars | 7.50 (7.00–8.00) | 7.0 | 1800 | 3.00 | 8.91 |",
                      text)
        self.assertIn("1,000,000 rows csv: wall at most 0.5x DuckDB's: Tessera 2.50 s, "
                      "DuckDB 6.50 s (0.38x): **PASS**", text)
        self.assertIn("1,000,000 rows csv: peak RSS at most 256 MiB: Tessera 203 MiB "
                      "(largest of 3 runs): **PASS**", text)
        self.assertIn("10,000,000 rows csv: peak RSS at most 256 MiB: Tessera 260 MiB "
                      "(largest of 2 runs): **FAIL**", text)
        self.assertIn("10,000,000 rows csv: peak RSS at most 1.25x the peak at 1M: 260 MiB vs "
                      "203 MiB (1.28x): **FAIL**", text)
        # cost: Tessera at 256 MB, DuckDB (the fastest peer) at 1,024 MB
        self.assertIn("| 1,000,000 | csv | tessera | 256 | 2.50 |", text)
        self.assertIn("| 1,000,000 | csv | duckdb (fastest peer) | 1024 | 6.50 |", text)
        self.assertNotIn("polars (fastest peer)", text)

    def test_slow_tessera_and_failed_runs(self):
        runs = [run_line("tessera", 1000000, "csv", 1, 4.0, 4.0, 300),
                run_line("duckdb", 1000000, "csv", 1, 6.0, 6.0, 1000),
                run_line("duckdb", 1000000, "csv", 2, 0.1, 0.1, 10, rc=1)]
        text = self.report(runs)
        self.assertIn("(0.67x): **FAIL**", text)
        self.assertIn("Tessera 300 MiB (largest of 1 runs): **FAIL**", text)
        self.assertIn("| 6.00 | 6.0 | 1000 | 1.50 | 3.33 | 2 (1) |", text)

    def test_stage_seconds(self):
        text = self.report([run_line("duckdb", 1000000, "csv", 1, 6.0, 6.0, 1000)], {
            "report_duckdb_1000000_csv_1.json": '{"stage_seconds": {"read": 1.0, "write": 2.0}}',
            "report_duckdb_1000000_csv_2.json": '{"stage_seconds": {"read": 3.0, "write": 2.0}}',
            "report_bad.json": "{}"})
        self.assertIn("| 1,000,000 | csv | duckdb | read 2.00, write 2.00 |", text)

    def test_peers_only(self):
        text = self.report([run_line("duckdb", 1000000, "csv", 1, 6.0, 6.0, 1000)])
        self.assertIn("no Tessera run, targets not evaluated", text)
        self.assertIn("| – | – | 1 (0) |", text)

    def test_cold_start_and_zips(self):
        text = self.report([], {
            "cold_start.tsv": "function\trun\tms\ningest\t1\t9.0\ningest\t2\t11.0\n"
                              "aggregate\t1\t25.0\n(baseline: curl)\t1\t4.0\n",
            "zip_sizes.tsv": "function\tbytes\ningest\t8389588\naggregate\t26682994\n"})
        self.assertIn("| ingest | 10.0 (9.0–11.0) | 2 | **PASS** |", text)
        self.assertIn("| aggregate | 25.0 | 1 | **FAIL** |", text)
        self.assertIn("| (baseline: curl) | 4.0 | 1 | reference |", text)
        self.assertIn("| ingest | 8,389,588 | 8.00 | **PASS** |", text)
        self.assertIn("| aggregate | 26,682,994 | 25.45 | **FAIL** |", text)


if __name__ == "__main__":
    unittest.main()
