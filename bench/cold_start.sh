#!/usr/bin/env bash
# Cold start of the five functions (target: under 20 ms from process start to the first
# `invocation/next`), host release build.
#
# usage: bench/cold_start.sh WORK_DIR [cold_start.py options, e.g. --runs 50]
#
# Builds the five functions (`cargo build --release`, for the host), copies the binaries to
# WORK_DIR/bin (so no other build can swap them), and runs bench/cold_start.py on them with the
# sample mesh's `embedded` environment; writes WORK_DIR/results/cold_start.tsv. FUNCTIONS_BIN=DIR
# uses binaries already built in DIR instead of building.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n 2,10p "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mkdir -p "$1" && cd "$1" && pwd)"
shift
FUNCTIONS=(ingest clean contract-check aggregate catalog-register)
mkdir -p "$WORK/bin" "$WORK/results"
src="${FUNCTIONS_BIN:-}"
if [ -z "$src" ]; then
    pkgs=()
    for f in "${FUNCTIONS[@]}"; do pkgs+=(-p "$f"); done
    echo "building the functions (cargo build --release ${pkgs[*]})" >&2
    (cd "$ROOT" && cargo build --release --quiet "${pkgs[@]}")
    target="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    src="$target/release"
fi
for f in "${FUNCTIONS[@]}"; do
    cp "$src/$f" "$WORK/bin/$f.new" && mv "$WORK/bin/$f.new" "$WORK/bin/$f"
done
python3 "$ROOT/bench/cold_start.py" --bin-dir "$WORK/bin" --out "$WORK/results" "$@"
