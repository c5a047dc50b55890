#!/usr/bin/env bash
# Runs every Tessera test on a fresh machine.
#
# 1. installs the pinned test dependencies into virtual environments: pyarrow, moto (the AWS
#    emulator), cargo-lambda (tests/requirements.txt); SAM CLI, aws-sam-translator and cfn-lint
#    (requirements-sam.txt); checkov (requirements-checkov.txt); datacontract-cli
#    (requirements-datacontract.txt);
# 2. starts moto on 127.0.0.1:5000, a second moto on 5001 for the infrastructure deploy test, and
#    `cargo lambda watch` on 127.0.0.1:9000, serving the five functions against the mesh's
#    `emulator` environment;
# 3. runs `cargo test --workspace` (and, without extra arguments, the benchmark report's Python
#    unit tests in bench/), then stops everything it started.
#
# TESSERA_EMULATOR=localstack runs the same tests with S3, EventBridge and SQS on LocalStack
# (started on the host at 127.0.0.1:4566 from tests/requirements-localstack.txt, Python 3.12+;
# Glue stays on moto, LocalStack's is a paid feature) and the functions on the mesh's
# `localstack` environment. TESSERA_LOCALSTACK=external uses a LocalStack already listening on
# 4566 instead (a container: `docker run --rm -p 127.0.0.1:4566:4566 localstack/localstack`);
# start it fresh for each run.
#
# Extra arguments go to `cargo test` (for example `--test it emulator`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tessera"
venv="${TESSERA_VENV:-$cache/venv}"
emulator="${TESSERA_EMULATOR:-moto}"
# The mesh's environments name these endpoints; the functions read them from there.
moto_port=5000
# A second moto for the infrastructure deploy test (the end-to-end test resets the first).
moto_cfn_port=5001
localstack_port=4566
lambda_port="${TESSERA_LAMBDA_PORT:-9000}"
logs="$(mktemp -d)"

case "$emulator" in
  moto) environment=emulator ;;
  localstack) environment=localstack ;;
  *) echo "error: TESSERA_EMULATOR must be moto or localstack, not \`$emulator\`" >&2; exit 2 ;;
esac

install() { # venv, requirements file
  if [ ! -x "$1/bin/python" ]; then
    python3 -m venv "$1"
  fi
  "$1/bin/python" -m pip install --disable-pip-version-check --quiet -r "$root/tests/$2"
}
install "$venv" requirements.txt
export PATH="$venv/bin:$PATH"
export TESSERA_PYTHON="$venv/bin/python"
# The infrastructure checkers, each in its own environment (their pins conflict).
install "$cache/sam-venv" requirements-sam.txt
install "$cache/checkov-venv" requirements-checkov.txt
# A second ODCS validator for Tessera's contracts.
install "$cache/datacontract-venv" requirements-datacontract.txt
export TESSERA_DATACONTRACT="$cache/datacontract-venv/bin/datacontract"
export TESSERA_SAM_PYTHON="$cache/sam-venv/bin/python"
export TESSERA_SAM="$cache/sam-venv/bin/sam" TESSERA_CFN_LINT="$cache/sam-venv/bin/cfn-lint"
export TESSERA_CHECKOV="$cache/checkov-venv/bin/checkov"
export SAM_CLI_TELEMETRY=0
# Headless Chromium for the portal's browser test (tests/it/portal.rs), from Debian's package;
# skipped when already installed. Under CI (CI set) that test fails without it.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
fi

start_localstack=no
if [ "$emulator" = localstack ] && [ "${TESSERA_LOCALSTACK:-}" != external ]; then
  start_localstack=yes
  ls_venv="${TESSERA_LOCALSTACK_VENV:-$cache/localstack-venv}"
  if [ ! -x "$ls_venv/bin/python" ]; then
    python=""
    candidates=(python3.14 python3.13 python3.12 python3)
    # pyenv keeps versions that are installed but not selected.
    if command -v pyenv >/dev/null; then
      candidates+=($(ls -d "$(pyenv root)"/versions/3.*/bin/python3 2>/dev/null | sort -rV))
    fi
    for candidate in "${candidates[@]}"; do
      if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        python="$candidate"
        break
      fi
    done
    if [ -z "$python" ]; then
      echo "error: LocalStack needs Python 3.12 or newer (python3.12 or newer on PATH, or in pyenv)" >&2
      exit 1
    fi
    "$python" -m venv "$ls_venv"
  fi
  "$ls_venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    -r "$root/tests/requirements-localstack.txt"
fi

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

ports=("$moto_port" "$moto_cfn_port" "$lambda_port")
if [ "$start_localstack" = yes ]; then ports+=("$localstack_port"); fi
for port in "${ports[@]}"; do
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
moto_server -H 127.0.0.1 -p "$moto_cfn_port" >"$logs/moto-cfn.log" 2>&1 &
pids+=($!)
if [ "$start_localstack" = yes ]; then
  # LocalStack on the host: no Docker, no DNS server, no downloads, state in a scratch folder.
  OVERRIDE_IN_DOCKER=0 GATEWAY_LISTEN="127.0.0.1:$localstack_port" DNS_ADDRESS=0 \
    SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 FILESYSTEM_ROOT="$logs/localstack" \
    SERVICES=s3,events,sqs \
    "$ls_venv/bin/python" -m localstack.runtime.main >"$logs/localstack.log" 2>&1 &
  pids+=($!)
fi
cargo lambda watch -A 127.0.0.1 -P "$lambda_port" \
  --env-var "TESSERA_MESH=$root/samplecli.toml,TESSERA_ENV=$environment,RUST_LOG=warn" \
  --env-var "AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test,AWS_REGION=us-east-1" \
  >"$logs/lambda.log" 2>&1 &
pids+=($!)
set +m
wait_for "http://127.0.0.1:$moto_port/moto-api/" "moto" "$logs/moto.log"
wait_for "http://127.0.0.1:$moto_cfn_port/moto-api/" "moto (deploy test)" "$logs/moto-cfn.log"
if [ "$start_localstack" = yes ]; then
  for _ in $(seq 1 240); do
    if grep -q '^Ready\.' "$logs/localstack.log"; then break; fi
    sleep 0.5
  done
fi
if [ "$emulator" = localstack ]; then
  wait_for "http://127.0.0.1:$localstack_port/_localstack/health" "LocalStack" "$logs/localstack.log"
fi
wait_for "http://127.0.0.1:$lambda_port/" "cargo lambda watch" "$logs/lambda.log"

# The public bad-input corpora of the hostile-input tests (docs/hostile-input.md), vendored
# under tests/corpora with their licenses. Set, it must exist: the tests fail rather than skip.
TESSERA_CORPORA="${TESSERA_CORPORA:-$root/tests/corpora}"
export TESSERA_CORPORA
export TESSERA_TEST_ENV="$environment"
export TESSERA_MOTO_URL="http://127.0.0.1:$moto_port"
export TESSERA_MOTO_CFN_URL="http://127.0.0.1:$moto_cfn_port"
export TESSERA_LAMBDA_URL="http://127.0.0.1:$lambda_port"
status=0
cargo test --workspace --locked "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- cargo lambda watch (last 50 lines) ---" >&2
  tail -n 50 "$logs/lambda.log" >&2 || true
  if [ "$start_localstack" = yes ]; then
    echo "--- LocalStack (last 30 lines) ---" >&2
    tail -n 30 "$logs/localstack.log" >&2 || true
  fi
fi
# The benchmark report's own tests (stdlib Python, milliseconds), on a full run.
if [ $# -eq 0 ]; then
  python3 -m unittest discover --quiet --start-directory "$root/bench" || status=$?
fi
exit "$status"
