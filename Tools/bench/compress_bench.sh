#!/usr/bin/env bash
# Compressed Folio files against zstd -19 and lz4 -9 of the plain file, and decompression
# and random-lookup throughput against the uncompressed table, in one run.
#   bash Tools/bench/compress_bench.sh            (needs the zstd and lz4 command-line tools)
# Env: FOLIO (binary, default .build/release/folio), MODEL (all-MiniLM-L6-v2 folder),
#      OUT (scratch directory), ROWS (rows of the synthetic int4 table).
set -euo pipefail
FOLIO=${FOLIO:-.build/release/folio}
MODEL=${MODEL:-$HOME/.cache/folio/all-MiniLM-L6-v2}
OUT=${OUT:-/tmp/folio-compress-bench}
ROWS=${ROWS:-1000000}
mkdir -p "$OUT"
command -v zstd >/dev/null && command -v lz4 >/dev/null || { echo "install zstd and lz4 (apt-get install zstd lz4)" >&2; exit 1; }

"$FOLIO" convert "$MODEL" "$OUT/minilm-f32.folio" >/dev/null
"$FOLIO" convert "$MODEL" "$OUT/minilm-bf16.folio" --quantize '*.weight=bf16' --quantize '*.bias=bf16' >/dev/null
"$FOLIO" bench tables "$OUT/ngram-int4.folio" --tables 1 --rows "$ROWS" --dim 256 --scheme int4 --seed 1 >/dev/null

size() { stat -c %s "$1"; }
pct() { python3 -c "print(f'{100*$1/$2:.1f}%')"; }
echo "| file | plain .folio | zstd -19 (file) | lz4 -9 (file) | folio lz4:9 | folio zstd:19 (default: planes per tensor where they pay) | folio zstd:19 --no-byte-planes | folio zstd:19 --byte-planes | folio lz4:9 --byte-planes |"
echo "|---|---|---|---|---|---|---|---|---|"
for name in minilm-bf16 minilm-f32 ngram-int4; do
    src="$OUT/$name.folio"
    plain=$(size "$src")
    z=$(zstd -19 -q -c "$src" | wc -c)
    l=$(lz4 -9 -q -c "$src" | wc -c)
    "$FOLIO" convert "$src" "$OUT/$name.lz4.folio" --compress lz4:9 >/dev/null
    "$FOLIO" convert "$src" "$OUT/$name.zstd.folio" --compress zstd:19 >/dev/null
    "$FOLIO" convert "$src" "$OUT/$name.zstdn.folio" --compress zstd:19 --no-byte-planes >/dev/null
    "$FOLIO" convert "$src" "$OUT/$name.zstdp.folio" --compress zstd:19 --byte-planes >/dev/null
    "$FOLIO" convert "$src" "$OUT/$name.lz4p.folio" --compress lz4:9 --byte-planes >/dev/null
    row="| $name | $plain |"
    for v in $z $l $(size "$OUT/$name.lz4.folio") $(size "$OUT/$name.zstd.folio") $(size "$OUT/$name.zstdn.folio") $(size "$OUT/$name.zstdp.folio") $(size "$OUT/$name.lz4p.folio"); do
        row+=" $v ($(pct "$v" "$plain")) |"
    done
    echo "$row"
    # Round trip: unpacking gives the plain file back byte for byte.
    for v in zstd zstdp; do
        "$FOLIO" convert "$OUT/$name.$v.folio" "$OUT/$name.unpacked.folio" >/dev/null
        cmp -s "$src" "$OUT/$name.unpacked.folio" && echo "  $name: unpacked $v file is identical to the plain file" || echo "  $name: UNPACKED $v FILE DIFFERS"
    done
    "$FOLIO" verify "$OUT/$name.zstdp.folio" >/dev/null && echo "  $name: verify OK"
done

echo
echo "Throughput (decompression on 1 and 2 threads; uniform random row gathers, compressed vs plain):"
# lz4 saves under 3% on the int4 table, so that file stays uncompressed (nothing to measure).
"$FOLIO" convert "$OUT/ngram-int4.folio" "$OUT/ngram-int4.zstdd.folio" --compress zstd >/dev/null
"$FOLIO" convert "$OUT/minilm-bf16.folio" "$OUT/minilm-bf16.zstdd.folio" --compress zstd --byte-planes >/dev/null
"$FOLIO" convert "$OUT/minilm-bf16.folio" "$OUT/minilm-bf16.lz4d.folio" --compress lz4 --byte-planes >/dev/null
for c in ngram-int4.zstdd ngram-int4.zstd minilm-bf16.lz4d minilm-bf16.zstdd minilm-bf16.zstdp; do
    p=${c%%.*}
    echo "$c:"
    "$FOLIO" compress-bench "$OUT/$c.folio" "$OUT/$p.folio" | sed 's/^/  /'
    "$FOLIO" compress-bench "$OUT/$c.folio" "$OUT/$p.folio" --cache-bytes $((1 << 30)) | tail -1 | sed 's/^/  (1 GiB cache) /'
done
