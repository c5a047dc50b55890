#!/usr/bin/env bash
# Each function's Lambda zip (arm64) against the 10 MB target.
#
# usage: bench/zip_sizes.sh WORK_DIR
#
# Builds the five functions for Graviton with cargo-lambda
# (`cargo lambda build --release --arm64 --output-format zip`, zig links them; about 15 minutes
# on two cores), copies each target/lambda/<function>/bootstrap.zip to WORK_DIR/zips/ and writes
# WORK_DIR/results/zip_sizes.tsv. The zips hold the function binary only: the mesh file and the
# contracts travel in the stack's mesh layer. cargo-lambda and zig come from PATH, or from the
# test venv (TESSERA_VENV, default ${XDG_CACHE_HOME:-~/.cache}/tessera/venv, which
# tests/run.sh installs from tests/requirements.txt). ZIPS_FROM=DIR measures the zips already in
# DIR/<function>/bootstrap.zip instead of building.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n 2,13p "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mkdir -p "$1" && cd "$1" && pwd)"
FUNCTIONS=(ingest clean contract-check aggregate catalog-register)
LIMIT=10000000
mkdir -p "$WORK/zips" "$WORK/results"
src="${ZIPS_FROM:-}"
if [ -z "$src" ]; then
    venv="${TESSERA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/venv}"
    export PATH="$venv/bin:$PATH"   # its python3 has ziglang, which cargo-lambda runs as zig
    command -v cargo-lambda >/dev/null || {
        echo "error: cargo-lambda not found (run tests/run.sh once, or pip install the pins of" \
            "tests/requirements.txt)" >&2
        exit 2
    }
    pkgs=()
    for f in "${FUNCTIONS[@]}"; do pkgs+=(-p "$f"); done
    echo "building (cargo lambda build --release --arm64 --output-format zip ${pkgs[*]})" >&2
    start=$(date +%s)
    (cd "$ROOT" && cargo lambda build --release --arm64 --output-format zip "${pkgs[@]}")
    echo "built in $(( $(date +%s) - start )) s" >&2
    target="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    src="$target/lambda"
fi
printf "function\tbytes\n" >"$WORK/results/zip_sizes.tsv"
status=0
for f in "${FUNCTIONS[@]}"; do
    cp "$src/$f/bootstrap.zip" "$WORK/zips/$f.zip"
    b=$(stat -c %s "$WORK/zips/$f.zip")
    printf "%s\t%s\n" "$f" "$b" >>"$WORK/results/zip_sizes.tsv"
    verdict=PASS
    if [ "$b" -ge "$LIMIT" ]; then verdict="FAIL (target < 10 MB)"; status=1; fi
    awk -v f="$f" -v b="$b" -v v="$verdict" 'BEGIN { printf "%-17s %11d bytes %7.2f MiB  %s\n", f, b, b / 1048576, v }'
done
exit $status
