#!/usr/bin/env bash
# Runs every Tessera test on a fresh machine.
#
# 1. installs the pinned test dependencies (tests/requirements.txt) into a virtual environment:
#    pyarrow, moto (the AWS emulator), cargo-lambda;
# 2. starts moto on 127.0.0.1:5000 and `cargo lambda watch` on 127.0.0.1:9000, serving the five
#    functions against the mesh's `emulator` environment;
# 3. runs `cargo test --workspace`, then stops everything it started.
#
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TESSERA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/venv}"
# The mesh's `emulator` environment names this endpoint; the functions read it from there.
moto_port=5000
lambda_port="${TESSERA_LAMBDA_PORT:-9000}"
logs="$(mktemp -d)"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$root/tests/requirements.txt"
export PATH="$venv/bin:$PATH"
export TESSERA_PYTHON="$venv/bin/python"

# Emulator credentials and region; nothing here reaches AWS.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$logs"
}
trap cleanup EXIT

wait_for() { # url, what, log
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    sleep 0.5
  done
  echo "error: $2 did not start; its log:" >&2
  cat "$3" >&2
  exit 1
}

for port in "$moto_port" "$lambda_port"; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "error: 127.0.0.1:$port is already in use; stop what listens there (the Lambda port can be moved with TESSERA_LAMBDA_PORT)" >&2
    exit 1
  fi
done

cd "$root"
# The functions are built before `cargo lambda watch` serves them, so no test waits on a build.
cargo build --workspace --locked --bins

set -m
moto_server -H 127.0.0.1 -p "$moto_port" >"$logs/moto.log" 2>&1 &
pids+=($!)
cargo lambda watch -A 127.0.0.1 -P "$lambda_port" \
  --env-var "TESSERA_MESH=$root/samplecli.toml,TESSERA_ENV=emulator,RUST_LOG=warn" \
  --env-var "AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test,AWS_REGION=us-east-1" \
  >"$logs/lambda.log" 2>&1 &
pids+=($!)
set +m
wait_for "http://127.0.0.1:$moto_port/moto-api/" "moto" "$logs/moto.log"
wait_for "http://127.0.0.1:$lambda_port/" "cargo lambda watch" "$logs/lambda.log"

export TESSERA_EMULATOR_URL="http://127.0.0.1:$moto_port"
export TESSERA_LAMBDA_URL="http://127.0.0.1:$lambda_port"
status=0
cargo test --workspace --locked "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- cargo lambda watch (last 50 lines) ---" >&2
  tail -n 50 "$logs/lambda.log" >&2 || true
fi
exit "$status"
