#!/usr/bin/env python3
"""Cold start of the five functions: process start to ready for the first event. Stdlib only.

usage: cold_start.py [--bin-dir DIR] [--runs N] [--mesh FILE] [--env NAME] [--out RESULTS_DIR]
                     [FUNCTION ...]

Each run starts a function binary (DIR/<function>, e.g. the host release build in
target/release) with AWS_LAMBDA_RUNTIME_API pointing at a small HTTP server on loopback, and
measures the time from just before the process is spawned to the arrival of its first
`GET /2018-06-01/runtime/invocation/next`: what the function does before it can take an event
(runtime start, reading the mesh file and its contracts, building the ports). The process is
then killed. The functions read the mesh layer as Lambda unpacks it into /opt: the folder of
--mesh (default: the committed layer, infra/mesh/samplecli.toml, whose validation stamp spares
them the contracts' JSON Schema) copied to a temporary folder, with TESSERA_ENV (default
`embedded`: local folders, no network; the mesh's relative warehouse folder is created if
missing). The binary is read from the page cache: a
Lambda cold start also loads it from the deployment package, which this does not measure.

A last row, `(baseline: curl)`, measures curl asking for an event the same way: what spawning
and the loopback server add, plus curl's own start (--no-baseline skips it).

Prints the median (min–max) per function against the 20 ms target; with --out, writes
RESULTS_DIR/cold_start.tsv (function, run, ms) for summarize.py. Exit status 1 when a function
did not reach `invocation/next`.
"""
import argparse
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FUNCTIONS = ["ingest", "clean", "contract-check", "aggregate", "catalog-register"]
NEXT = "/2018-06-01/runtime/invocation/next"
TARGET_MS = 20.0


class Runtime(http.server.ThreadingHTTPServer):
    """The Lambda Runtime API, as far as a function's first request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.first_next_ns = None
        self.arrived = threading.Event()
        self.release = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        now = time.perf_counter_ns()
        srv = self.server
        if self.path == NEXT and srv.first_next_ns is None:
            srv.first_next_ns = now
            srv.arrived.set()
        # Hold the long poll as Lambda does until the process is killed.
        srv.release.wait(30)
        try:
            self.send_response(503)
            self.end_headers()
        except OSError:
            pass

    def log_message(self, *args):
        pass


def one_run(argv, env, cwd, timeout=30.0):
    """Milliseconds from spawn to the first invocation/next, or raise with the stderr.
    `{api}` in argv is replaced by the runtime API's address."""
    srv = Runtime()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    api = "127.0.0.1:%d" % srv.server_address[1]
    env = dict(env, AWS_LAMBDA_RUNTIME_API=api)
    argv = [x.replace("{api}", api) for x in argv]
    err = tempfile.TemporaryFile()
    try:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while not srv.arrived.wait(0.005):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
        proc.kill()
        proc.wait()
        if srv.first_next_ns is None:
            err.seek(0)
            raise RuntimeError("%s exited (%s) before asking for an event: %s" % (
                argv[0], proc.returncode, err.read().decode(errors="replace")[-2000:]))
        return (srv.first_next_ns - t0) / 1e6
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        err.close()


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("functions", nargs="*", default=FUNCTIONS)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
    ap.add_argument("--bin-dir", default=os.path.join(target, "release"),
                    help="folder with the function binaries (default: the target folder's "
                    "release/)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mesh", default=os.environ.get(
        "TESSERA_MESH", os.path.join(root, "infra", "mesh", "samplecli.toml")),
        help="mesh file; its folder is copied, as Lambda unpacks the mesh layer into /opt "
        "(default: the committed mesh layer, infra/mesh/, with its validation stamp)")
    ap.add_argument("--env", default=os.environ.get("TESSERA_ENV", "embedded"))
    ap.add_argument("--out", help="results folder: writes cold_start.tsv")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the reference row: curl asking for an event the same way")
    a = ap.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TESSERA_"))}
    env.update({
        "TESSERA_ENV": a.env,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cold-start",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_REGION": "us-east-1",
        "RUST_LOG": "warn",
    })
    rows = []
    failed = False
    commands = [(fn, [os.path.join(os.path.abspath(a.bin_dir), fn)]) for fn in a.functions]
    if not a.no_baseline and shutil.which("curl"):
        # What the harness itself adds (spawning, loopback HTTP) plus curl's own start.
        commands.append(("(baseline: curl)", ["curl", "-s", "-o", os.devnull,
                                              "http://{api}" + NEXT]))
    with tempfile.TemporaryDirectory() as cwd:
        layer = os.path.join(cwd, "opt")
        shutil.copytree(os.path.dirname(os.path.abspath(a.mesh)), layer)
        env["TESSERA_MESH"] = os.path.join(layer, os.path.basename(a.mesh))
        for fn, argv in commands:
            fenv = dict(env, AWS_LAMBDA_FUNCTION_NAME=fn)
            try:
                one_run(argv, fenv, cwd)  # warm the page cache, not counted
                times = [one_run(argv, fenv, cwd) for _ in range(a.runs)]
            except (OSError, RuntimeError) as e:
                print("%s: %s" % (fn, e), file=sys.stderr)
                failed = True
                continue
            rows.extend((fn, i + 1, ms) for i, ms in enumerate(times))
            m = statistics.median(times)
            print("%-17s median %6.1f ms (min %.1f, max %.1f, %d runs): %s" % (
                fn, m, min(times), max(times), len(times),
                "reference" if fn.startswith("(") else
                "PASS" if m < TARGET_MS else "FAIL (target < %.0f ms)" % TARGET_MS))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "cold_start.tsv"), "w") as f:
            f.write("function\trun\tms\n")
            for fn, i, ms in rows:
                f.write("%s\t%d\t%.2f\n" % (fn, i, ms))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
