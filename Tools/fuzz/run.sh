#!/usr/bin/env bash
# Builds the fuzz targets (libFuzzer + AddressSanitizer, leak detection on) and runs each
# for SECONDS (default 600), two at a time on the two cores. Corpora live in
# Tests/Fuzz/TARGET/corpus (seeded from the fixtures by Tools/fuzz/seed.py) and are merged
# back minimized; crash, leak and timeout reproducers land in Tests/Fuzz/TARGET/crashes.
# The log of each run, with executions per second and corpus size, is in
# Tests/Fuzz/TARGET/last-run.txt.
#
#   bash Tools/fuzz/run.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
shift || true
all=(FuzzFolioHeader FuzzSafetensors FuzzGGUF FuzzPickle FuzzNumPy FuzzZip FuzzTokenizer FuzzCompressed)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
python3 Tools/fuzz/seed.py
(cd Tools/fuzz && swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
bin=Tools/fuzz/.build/release
run() {
    local t=$1 dir=Tests/Fuzz/$1
    mkdir -p "$dir/corpus" "$dir/crashes" "/tmp/folio-fuzz-$t"
    ASAN_OPTIONS=detect_leaks=1 "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$dir/crashes/" -print_final_stats=1 "/tmp/folio-fuzz-$t" "$dir/corpus" > "$dir/last-run.txt" 2>&1 || true
    # Keep a minimized corpus.
    rm -rf "/tmp/folio-fuzz-min-$t" && mkdir -p "/tmp/folio-fuzz-min-$t"
    "$bin/$t" -merge=1 "/tmp/folio-fuzz-min-$t" "$dir/corpus" "/tmp/folio-fuzz-$t" > /dev/null 2>&1 || true
    rm -rf "$dir/corpus" && mv "/tmp/folio-fuzz-min-$t" "$dir/corpus"
    echo "$t: $(grep -E '^stat::number_of_executed_units' "$dir/last-run.txt" | awk '{print $2}') runs, $(grep -E '^stat::average_exec_per_sec' "$dir/last-run.txt" | awk '{print $2}') exec/s, corpus $(ls "$dir/corpus" | wc -l) files, crashes $(ls "$dir/crashes" | wc -l)"
}
i=0
for t in "${targets[@]}"; do
    run "$t" &
    i=$((i + 1))
    if [ $((i % 2)) = 0 ]; then wait; fi
done
wait
