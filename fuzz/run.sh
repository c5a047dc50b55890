#!/usr/bin/env bash
# Builds the fuzz targets with cargo-fuzz (libFuzzer) and runs each for a bounded time; exits
# non-zero on the first crash, timeout or out-of-memory (docs/fuzzing.md).
# Usage: bash fuzz/run.sh [SECONDS per target, default 20] [TARGET...]
# Needs cargo-fuzz on PATH (.ci/run installs a pinned one). Builds into $CARGO_TARGET_DIR/fuzz
# (default target/fuzz); findings go to <that>/artifacts/<target>/, never into the clone.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv ndjson cdc contract)
target_dir="${CARGO_TARGET_DIR:-$PWD/../target}/fuzz"
# cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation); the stable toolchain accepts
# them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
# cargo-fuzz's defaults: optimised (profile.release of fuzz/Cargo.toml), debug assertions,
# AddressSanitizer. The same options for `build` and `run`, else `run` rebuilds.
build=(--target-dir "$target_dir")

cargo metadata --locked --format-version 1 >/dev/null # fuzz/Cargo.lock is up to date
cargo fuzz build "${build[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash seeds.sh "$work/seeds"
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$target_dir/artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  # Corpus first (libFuzzer adds new inputs there), then the seeds. Per input: 10 s, 2 GiB.
  cargo fuzz run "${build[@]}" "$t" "$work/corpus/$t" "$work/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -detect_leaks=0 \
    -artifact_prefix="$target_dir/artifacts/$t/" -print_final_stats=1
done
