#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20), starting from the
# seeds in fuzz/seeds/TARGET and growing fuzz/corpus/TARGET; stops at the
# first crash (its input lands in fuzz/artifacts/TARGET) with a non-zero
# exit. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   fuzz/run.sh            # the short run CI does
#   fuzz/run.sh 3600       # an hour per target
#   fuzz/run.sh 600 key    # only some targets
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="$(mktemp)"
    status=0
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    echo "fuzz: $t: ${runs:-?} executions in ${seconds}s, exit $status"
    if [ "$status" -ne 0 ]; then
        grep -E 'panicked|ERROR|SUMMARY|artifact' "$log" >&2 || tail -20 "$log" >&2
        failed+=("$t")
    fi
    rm -f "$log"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}; inputs in fuzz/artifacts/" >&2
    exit 1
fi
