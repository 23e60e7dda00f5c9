#!/usr/bin/env bash
# Conversion benchmarks (figures, not tests): plain conversion against cp, int8 embedding
# conversion throughput, and peak RSS converting a 10 GiB sharded checkpoint.
#
#   bash Tools/bench/convert.sh [WORKDIR]        (default /tmp/folio-bench; needs ~40 GB)
#
# Inputs come from Tools/bench/make_big_safetensors.py (numpy). Every timing is the best of
# three runs with a warm page cache. `folio convert` fsyncs its output before renaming it
# (atomic and durable); plain cp does not, so cp is timed both alone and followed by sync.
set -euo pipefail
cd "$(dirname "$0")/../.."
folio=${FOLIO:-.build/release/folio}
work=${1:-/tmp/folio-bench}
mkdir -p "$work"
[ -x "$folio" ] || swift build -c release
[ -f "$work/big.safetensors" ] || python3 Tools/bench/make_big_safetensors.py "$work/big.safetensors" --gib 4
[ -d "$work/ten" ] || python3 Tools/bench/make_big_safetensors.py "$work/ten" --gib 10 --shards 4

now() { date +%s.%N; }
best() {  # best of three wall times of a command
    local b=""
    for _ in 1 2 3; do
        local t0 t1 d
        t0=$(now); "$@" >/dev/null; t1=$(now)
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$b" ] || [ "$(echo "$d < $b" | bc -l)" = 1 ]; then b=$d; fi
    done
    echo "$b"
}
bytes=$(stat -c %s "$work/big.safetensors")
cat "$work/big.safetensors" > /dev/null

t_cp=$(best bash -c "cp '$work/big.safetensors' '$work/cp.out'; rm -f '$work/cp.out'")
t_cpsync=$(best bash -c "cp '$work/big.safetensors' '$work/cp.out' && sync '$work/cp.out'; rm -f '$work/cp.out'")
t_plain=$(best bash -c "'$folio' convert '$work/big.safetensors' '$work/plain.folio'; rm -f '$work/plain.folio'")
t_int8=$(best bash -c "'$folio' convert '$work/big.safetensors' '$work/int8.folio' --embeddings int8; rm -f '$work/int8.folio'")
emb=$("$folio" inspect "$work/big.safetensors" --json --tensor model.embed_tokens.weight | python3 -c "import json,sys; print(json.load(sys.stdin)['tensors'][0]['nbytes'])")
t_emb=$(best bash -c "'$folio' convert '$work/big.safetensors' '$work/emb.folio' --embeddings int8 --quantize 'model.layers.*=int8'; rm -f '$work/emb.folio'")
shm=""
if [ -d /dev/shm ] && [ "$(df --output=avail -B1 /dev/shm | tail -1)" -gt $((bytes * 2)) ]; then
    shm=$(best bash -c "'$folio' convert '$work/big.safetensors' /dev/shm/folio-int8.folio --embeddings int8 --quantize 'model.layers.*=int8'; rm -f /dev/shm/folio-int8.folio")
fi

/usr/bin/time -v "$folio" convert "$work/ten" "$work/ten-out/model.folio" --embeddings int8 --max-shard-size 2GB \
    2> "$work/rss.txt" >/dev/null || { mkdir -p "$work/ten-out"; /usr/bin/time -v "$folio" convert "$work/ten" "$work/ten-out/model.folio" --embeddings int8 --max-shard-size 2GB 2> "$work/rss.txt" >/dev/null; }
rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$work/rss.txt")
tenbytes=$(du -sb "$work/ten" | cut -f1)
rm -rf "$work/ten-out"

gb() { echo "scale=3; $1 / $2 / 1000000000" | bc -l; }
echo "input: $work/big.safetensors, $bytes bytes (bf16); nproc $(nproc)"
echo "cp:                      $t_cp s  ($(gb "$bytes" "$t_cp") GB/s)"
echo "cp + sync:               $t_cpsync s  ($(gb "$bytes" "$t_cpsync") GB/s)"
echo "folio convert (plain):   $t_plain s  ($(gb "$bytes" "$t_plain") GB/s)  = $(echo "scale=2; $t_cp / $t_plain" | bc -l)x cp, $(echo "scale=2; $t_cpsync / $t_plain" | bc -l)x cp+sync"
echo "folio --embeddings int8: $t_int8 s  ($(gb "$bytes" "$t_int8") GB/s of input; embedding table $emb bytes)"
echo "folio all int8 (disk):   $t_emb s  ($(gb "$bytes" "$t_emb") GB/s of input)"
[ -n "$shm" ] && echo "folio all int8 (tmpfs):  $shm s  ($(gb "$bytes" "$shm") GB/s of input)"
echo "peak RSS converting $tenbytes bytes (4 shards) to int8 embeddings, 2 GB shards: $rss kB"
