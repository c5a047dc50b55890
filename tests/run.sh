#!/usr/bin/env bash
# Runs every Tessera test on a fresh machine: installs the pinned Python test dependencies into
# a virtual environment (pyarrow, the independent Parquet reader), then runs the Rust tests.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TESSERA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$root/tests/requirements.txt"
export TESSERA_PYTHON="$venv/bin/python"
cd "$root"
exec cargo test --workspace --locked "$@"
