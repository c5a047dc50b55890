#!/usr/bin/env bash
# The orders benchmark: Tessera's embedded chain against the Python/SQL peers of the shared
# benchmark, on the same generated files, in one interleaved run.
#
# usage: TESSERA_PEERS=/path/to/shared/bench bench/run.sh WORK_DIR
#
# WORK_DIR (keep it outside the repository) receives the data (WORK_DIR/data), the outputs
# (WORK_DIR/out/<engine>_<rows>_<format>), the Tessera binary measured (WORK_DIR/bin/tessera) and
# the results (WORK_DIR/results: runs.tsv, verify_<rows>_<format>.txt, summary.md).
#
# Environment (all optional except TESSERA_PEERS):
#   TESSERA_PEERS  the shared benchmark folder: gen_orders.py, peers/, verify_outputs.py,
#                  requirements-peers.txt
#   SIZES          row counts                                     (default: "100000 1000000")
#   FORMATS        input formats                                  (default: "csv ndjson")
#   REPS           runs per engine, size and format, sizes >= 1M  (default: 3)
#   REPS_SMALL     runs for sizes < 1M                            (default: 5)
#   PEERS          peers to run (default: "pyarrow pandas polars duckdb"; "" for none);
#                  a suffix +jemalloc/+system/+mimalloc sets ARROW_DEFAULT_MEMORY_POOL
#   TESSERA_BIN    the tessera binary to measure; default: `cargo build --release -p tessera-cli`
#                  and target/release/tessera; `none` runs the peers only. The binary is copied
#                  to WORK_DIR/bin first, so no other build can swap it during the run.
#   MESH           the mesh file `tessera bench run` reads    (default: bench/orders/mesh.toml)
#   BENCH_VENVS    where the peers' virtual environment is created and reused
#                  (default: ${XDG_CACHE_HOME:-~/.cache}/tessera/bench-venvs); PY overrides
#                  the python used for the peers, the generator and verify_outputs.py
#   DATA_DIR       where the generated files are (reused when present; default WORK_DIR/data)
#   THREADS        pass --threads N to every peer
#
# Every run is `/usr/bin/time -v <command>` from a scratch folder, its output folder removed
# first; runs are interleaved (rep-major, engine order rotated each rep) so background load hits
# every engine alike. After the runs of a size and format, verify_outputs.py compares all their
# outputs (counts against the generator's expected.json, content digests): it must print
# ALL AGREE. The exit status is non-zero when a run failed or the outputs disagree.
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n 2,34p "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$ROOT/bench"
if [ -z "${TESSERA_PEERS:-}" ] || [ ! -f "${TESSERA_PEERS}/verify_outputs.py" ]; then
    echo "error: set TESSERA_PEERS to the shared benchmark folder (the one holding" \
        "gen_orders.py, peers/ and verify_outputs.py)" >&2
    exit 2
fi
PEERS_DIR="$(cd "$TESSERA_PEERS" && pwd)"
WORK="$(mkdir -p "$1" && cd "$1" && pwd)"
case "$WORK/" in
    "$ROOT"/*) echo "error: WORK_DIR must be outside the repository" >&2; exit 2 ;;
esac
SIZES="${SIZES:-100000 1000000}"
FORMATS="${FORMATS:-csv ndjson}"
REPS="${REPS:-3}"
REPS_SMALL="${REPS_SMALL:-5}"
PEERS="${PEERS-pyarrow pandas polars duckdb}"
MESH="${MESH:-$ROOT/bench/orders/mesh.toml}"
VENVS="${BENCH_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/bench-venvs}"
DATA="${DATA_DIR:-$WORK/data}"
OUT="$WORK/out"
RES="$WORK/results"
SCRATCH="$WORK/scratch"
mkdir -p "$DATA" "$OUT" "$RES" "$SCRATCH" "$WORK/bin"
DATA="$(cd "$DATA" && pwd)"
if [ -f "$MESH" ]; then MESH="$(cd "$(dirname "$MESH")" && pwd)/$(basename "$MESH")"; fi
RUNS="$RES/runs.tsv"
THREAD_ARGS=()
if [ -n "${THREADS:-}" ]; then THREAD_ARGS=(--threads "$THREADS"); fi
FAILED=0

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ------------------------------------------------------------ the peers' python
# The shared setup_venvs.sh makes three environments; the benchmark needs only the first
# (`venv`, from requirements-peers.txt), made here the same way and reused.
if [ -z "${PY:-}" ]; then
    PY="$VENVS/venv/bin/python"
    stamp="$VENVS/venv/.requirements-peers.txt"
    if [ ! -x "$PY" ] || ! cmp -s "$PEERS_DIR/requirements-peers.txt" "$stamp"; then
        log "setting up the peers' venv in $VENVS/venv (pinned requirements-peers.txt)"
        mkdir -p "$VENVS"
        [ -x "$PY" ] || python3 -m venv "$VENVS/venv"
        "$PY" -m pip install --disable-pip-version-check --quiet \
            -r "$PEERS_DIR/requirements-peers.txt"
        cp "$PEERS_DIR/requirements-peers.txt" "$stamp"
    fi
fi

# ------------------------------------------------------------ the tessera binary
TESSERA=""
if [ "${TESSERA_BIN:-}" = none ]; then
    log "TESSERA_BIN=none: running the peers only"
else
    if [ -z "${TESSERA_BIN:-}" ]; then
        log "building tessera (cargo build --release -p tessera-cli)"
        (cd "$ROOT" && cargo build --release --quiet -p tessera-cli)
        target="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
            "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
        TESSERA_BIN="$target/release/tessera"
    fi
    cp "$TESSERA_BIN" "$WORK/bin/tessera.new" && mv "$WORK/bin/tessera.new" "$WORK/bin/tessera"
    if ! "$WORK/bin/tessera" bench run --help >/dev/null 2>&1; then
        log "SKIPPING TESSERA: \`$TESSERA_BIN\` has no \`bench run\` command (not merged yet?);" \
            "running the peers only"
    elif [ ! -f "$MESH" ]; then
        log "SKIPPING TESSERA: no mesh file $MESH (set MESH); running the peers only"
    else
        TESSERA="$WORK/bin/tessera"
    fi
fi
ENGINES=()
if [ -n "$TESSERA" ]; then ENGINES+=(tessera); fi
read -r -a peer_list <<<"$PEERS"
ENGINES+=("${peer_list[@]}")
if [ ${#ENGINES[@]} -eq 0 ]; then
    echo "error: nothing to run (no tessera and PEERS is empty)" >&2
    exit 2
fi

# ------------------------------------------------------------ what is measured
log "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
    "load: $(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "load_at_start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "tessera_commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo n/a)"
    if [ -n "$TESSERA" ]; then
        echo "tessera_bin ${TESSERA_BIN} ($("$TESSERA" --version 2>&1 | head -1))"
    fi
    echo "python $("$PY" -c 'import sys; print(sys.version.split()[0])')"
    "$PY" - <<'EOF' || true
import importlib
for m in ["pyarrow", "pandas", "polars", "duckdb", "numpy"]:
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "n/a")
EOF
} >"$RES/versions.txt" 2>&1
printf "kind\tname\tsize\tformat\trep\twall_s\tuser_s\tsys_s\tmaxrss_kb\trc\n" >"$RUNS"

# one measured command: kind name size format rep -- command...
# appends: kind name size format rep wall_s user_s sys_s maxrss_kb rc
measure() {
    local kind=$1 name=$2 size=$3 fmt=$4 rep=$5
    shift 6
    local tv="$RES/.time" rc=0
    (cd "$SCRATCH" && /usr/bin/time -v -o "$tv" "$@") >"$RES/.stdout" 2>"$RES/.stderr" || rc=$?
    if [ $rc -ne 0 ]; then
        log "FAILED ($rc): $*"
        tail -5 "$RES/.stderr" >&2
        cp "$RES/.stderr" "$RES/failed_${name}_${size}_${fmt}_${rep}.stderr"
        FAILED=1
    fi
    "$PY" "$HERE/timev.py" "$tv" "$kind" "$name" "$size" "$fmt" "$rep" "$rc" >>"$RUNS"
    rm -f "$tv"
}

# ------------------------------------------------------------ data
for n in $SIZES; do
    missing=0
    for fmt in $FORMATS; do [ -f "$DATA/orders_$n.$fmt" ] || missing=1; done
    [ -f "$DATA/orders_$n.expected.json" ] || missing=1
    if [ $missing = 1 ]; then
        gfmt=both
        if [ "$FORMATS" = csv ] || [ "$FORMATS" = ndjson ]; then gfmt=$FORMATS; fi
        log "generating $n rows ($gfmt, CSV with a BOM) into $DATA"
        measure gen gen_orders "$n" "$gfmt" 1 -- "$PY" "$PEERS_DIR/gen_orders.py" "$n" "$DATA" \
            --bom --format "$gfmt"
    fi
done

printf "size\tformat\tbytes\n" >"$RES/inputs.tsv"
for n in $SIZES; do
    for fmt in $FORMATS; do
        printf "%s\t%s\t%s\n" "$n" "$fmt" "$(stat -c %s "$DATA/orders_$n.$fmt")" >>"$RES/inputs.tsv"
    done
done

# ------------------------------------------------------------ runs
for n in $SIZES; do
    reps=$REPS
    if [ "$n" -lt 1000000 ]; then reps=$REPS_SMALL; fi
    for fmt in $FORMATS; do
        cat "$DATA/orders_$n.$fmt" >/dev/null # the page cache warm for everyone
    done
    for rep in $(seq "$reps"); do
        for fmt in $FORMATS; do
            raw="$DATA/orders_$n.$fmt"
            k=${#ENGINES[@]}
            for i in $(seq 0 $((k - 1))); do
                e=${ENGINES[$(((i + rep) % k))]}
                dir="$OUT/${e}_${n}_${fmt}"
                rm -rf "$dir"
                log "rows=$n format=$fmt rep=$rep/$reps $e"
                if [ "$e" = tessera ]; then
                    measure run tessera "$n" "$fmt" "$rep" -- \
                        "$TESSERA" bench run --mesh "$MESH" "$raw" "$dir" --format "$fmt"
                else
                    pool=()
                    case "$e" in *+*) pool=(env "ARROW_DEFAULT_MEMORY_POOL=${e#*+}") ;; esac
                    measure run "$e" "$n" "$fmt" "$rep" -- "${pool[@]}" "$PY" \
                        "$PEERS_DIR/peers/peer_${e%%+*}.py" "$raw" "$dir" --format "$fmt" \
                        "${THREAD_ARGS[@]}"
                fi
                cp "$dir/report.json" "$RES/report_${e}_${n}_${fmt}_$rep.json" 2>/dev/null || true
            done
        done
    done
    for fmt in $FORMATS; do
        dirs=()
        for e in "${ENGINES[@]}"; do dirs+=("$OUT/${e}_${n}_${fmt}"); done
        log "verifying the outputs of rows=$n format=$fmt (${ENGINES[*]})"
        v="$RES/verify_${n}_${fmt}.txt"
        "$PY" "$PEERS_DIR/verify_outputs.py" --expected "$DATA/orders_$n.expected.json" \
            "${dirs[@]}" >"$v" 2>&1 || true
        if [ "$(tail -1 "$v")" = "ALL AGREE" ]; then
            log "rows=$n format=$fmt: ALL AGREE"
        else
            log "rows=$n format=$fmt: THE OUTPUTS DISAGREE (or could not be read): $v"
            grep -v '^         ' "$v" | tail -12 >&2
            FAILED=1
        fi
    done
done

rm -f "$RES/.stdout" "$RES/.stderr"
"$PY" "$HERE/summarize.py" "$WORK" | tee "$RES/summary.md"
if [ $FAILED = 1 ]; then
    log "FAILED: a run failed or the outputs disagree (see above and $RES)"
    exit 1
fi
