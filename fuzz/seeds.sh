#!/usr/bin/env bash
# Seed corpora for the fuzz targets, from the repository's small sample files (docs/fuzzing.md).
# Usage: bash fuzz/seeds.sh OUT — writes OUT/<target>/<seed>. The first byte of a reader's input
# picks its options (fuzz/src/lib.rs): 0x00 is the recipe as the mesh has it.
set -euo pipefail
out="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"/{csv,ndjson,cdc,contract}

# seed TARGET NAME BYTE FILE...: the option byte, then the files' bytes.
seed() {
  local target="$1" name="$2" byte="$3"
  shift 3
  { printf "\\x$byte"; cat "$@"; } >"$out/$target/$name"
}

for f in "$root"/domains/sales/orders/raw/*.csv; do
  n="$(basename "$f" .csv)"
  seed csv "$n" 00 "$f"
  seed csv "$n-gzip" 02 <(gzip -c "$f")
  # Bit 4: no header, fields by position; bits 6-7: quoting off.
  seed csv "$n-noheader" 10 <(tail -n +2 "$f")
  seed csv "$n-noquote" 40 "$f"
  # Bit 2: Latin-1; bit 3: undeclared columns kept in the extras column.
  seed csv "$n-latin1-extras" 0c "$f"
done

for f in "$root"/domains/customers/customers/raw/*.ndjson "$root"/domains/sales/order_events/events/*.ndjson; do
  n="$(basename "$f" .ndjson)"
  seed ndjson "$n" 00 "$f"
  seed ndjson "$n-gzip" 02 <(gzip -c "$f")
  # Bit 4: one JSON array of the same objects.
  seed ndjson "$n-array" 10 <(printf '['; grep -v '^\s*$' "$f" | paste -sd, -; printf ']\n')
done

for f in "$root"/domains/customers/customer_changes/raw/*.ndjson; do
  n="$(basename "$f" .ndjson)"
  seed cdc "$n" 00 "$f"
  seed cdc "$n-gzip" 02 <(gzip -c "$f")
done

for f in "$root"/domains/*/*/*.odcs.yaml; do
  cp "$f" "$out/contract/$(basename "$f")"
done
