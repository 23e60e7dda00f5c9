#!/usr/bin/env bash
# Perplexity of the wide n-gram model with its n-gram tables in each scheme (the backbone
# kept f32), and of its twin, on one held-out text (Tools/train/heldout_local.py):
#   bash Tools/train/table_bits.sh NGRAM_DIR TWIN_DIR HELDOUT.txt [SCHEMES...]
# NGRAM_DIR / TWIN_DIR: the trained Hugging Face folders (Tools/train/device_run.sh).
set -euo pipefail
folio=${FOLIO:-.build/release/folio}
ngram=$1 twin=$2 text=$3; shift 3
schemes=${*:-f32 bf16 int8/g32 int4/g32 int4/g128 int3/g32 int3/g64 int3/g128 int2/g16 int2/g32 int2/g64}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); text $text ($(wc -c < "$text") bytes)"
score() { "$folio" perplexity "$1" "$text" --window 256 --stride 128 --json; }
for s in $schemes; do
    "$folio" convert "$ngram" "$tmp/m.folio" --quantize "model.ngram_embeddings.embedders.*=$s" --quantize '*=f32' > /dev/null
    tables=$("$folio" inspect "$tmp/m.folio" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(t['nbytes'] for t in d['tensors'] if '.ngram_embeddings.embedders.' in t['name']))")
    echo "ngram tables $s (table bytes $tables): $(score "$tmp/m.folio")"
done
"$folio" convert "$twin" "$tmp/t.folio" --quantize '*=f32' > /dev/null
echo "twin f32: $(score "$tmp/t.folio")"
