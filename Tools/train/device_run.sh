#!/usr/bin/env bash
# Issue 17's runs on the GPU machine, in three calls of under 10 minutes each:
#
#   bash Tools/train/device_run.sh prep     corpus + tokenizer + tokenization, then a
#                                           PROBE_SECONDS (20) s timing of each model's
#                                           compiled training step (tokens/s)
#   bash Tools/train/device_run.sh ngram    train the n-gram model, export, pack
#   bash Tools/train/device_run.sh twin     train the twin, export, pack
#   bash Tools/train/device_run.sh ngram-wide | twin-wide   the wide pair (model.py), the
#                                           same way; FIRST_PIECES=N sends only the first N
#                                           pieces of the (gzip) tar, and
#   bash Tools/train/device_run.sh pieces MODEL FIRST COUNT  sends the rest in a later call
#                                           on the same (warm) machine
#
# Data (corpus, tokenizer, token arrays) and the inductor cache live in $WORK (default
# Tools/train/work, git-ignored), which survives between calls while the machine stays
# warm; `ngram` and `twin` rebuild the data first when it is missing (about a minute more;
# the rebuild is deterministic, so both models see the same ids; each summary carries the
# sha256 of the tokenizer and of both token arrays to compare).
#
# Training time: each training call is planned to end CALL_MINUTES (default 9.0) after it starts;
# the training budget is CALL_MINUTES minus what the call has used so far minus
# RESERVE_MINUTES (default 1.5: data load, evaluations, final evaluation, export, packing).
# MINUTES=N sets the training budget directly instead.
#
# Outputs under $OUT (at most 8 files, each under 16 MiB, flat):
#   prep:  manifest.json, tokens.json, tokenizer.json, prep_log.txt, probe_ngram.jsonl,
#          probe_twin.jsonl
#   ngram: ngram.tar.00 ngram.tar.01 ... (15 MiB pieces of one tar: ngram/ = the Hugging
#          Face folder with bf16 model.safetensors), ngram_train_log.jsonl,
#          summary_ngram.json, val_prompts.json
#   twin:  the same with twin
#   Reassemble: cat ngram.tar.* | tar -x   (gives ngram/);
#   cat ngram-wide.tar.gz.* | tar -xz   (gives ngram-wide/)
#
# CPU test with tiny settings (what was run locally before the device calls):
#   OUT=/tmp/out TINY=1 bash Tools/train/device_run.sh prep   (then ngram, twin)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
T0=$(date +%s)
WORK=${WORK:-Tools/train/work}
DATA=$WORK/data
RUNS=$WORK/runs
OUT=${OUT:?set OUT to the folder whose files come back}
mkdir -p "$DATA" "$RUNS" "$OUT"
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/$WORK/inductor}
if [ "${TINY:-0}" = 1 ]; then
  MAX_MB=${MAX_MB:-5}; SAMPLE_MB=${SAMPLE_MB:-3}; SUFFIX=-tiny
  TRAIN_ARGS=${TRAIN_ARGS:---batch 4 --seq 64 --eval-every 20 --log-every 10 --eval-tokens 4096 --final-eval-tokens 16384 --no-compile}
  PROBE_SECONDS=${PROBE_SECONDS:-5}; MINUTES=${MINUTES:-0.2}
else
  MAX_MB=${MAX_MB:-400}; SAMPLE_MB=${SAMPLE_MB:-100}; SUFFIX=
  TRAIN_ARGS=${TRAIN_ARGS:-}
  PROBE_SECONDS=${PROBE_SECONDS:-20}
fi
PY=${PYTHON:-python3}

prep_data() {
  if [ -f "$DATA/tokens.json" ] && [ -f "$DATA/val.npy" ] && [ -f "$DATA/train.npy" ]; then
    echo "data: reusing $DATA"
    return
  fi
  local t=$(date +%s)
  $PY Tools/train/corpus.py --out "$DATA" --max-mb "$MAX_MB"
  local t1=$(date +%s)
  $PY Tools/train/tokenizer.py --corpus "$DATA" --sample-mb "$SAMPLE_MB" --check
  local t2=$(date +%s)
  echo "{\"prep_seconds\": {\"corpus\": $((t1 - t)), \"tokenizer\": $((t2 - t1))}}"
}

train_one() {  # $1 = ngram | twin | ngram-wide | twin-wide
  local model=$1 kind=${1%-wide} run=$RUNS/$1
  prep_data
  local used=$(( $(date +%s) - T0 ))
  local minutes=${MINUTES:-$($PY -c "print(round(max(0.5, ${CALL_MINUTES:-9.0} - $used / 60 - ${RESERVE_MINUTES:-1.5}), 2))")}
  echo "training $model for $minutes minutes (call used ${used}s so far)"
  rm -rf "$run"; mkdir -p "$run/pieces"
  local name=$kind
  [ "$model" != "$kind" ] && name=$model
  # the log is written straight into $OUT, so that it comes back even if the call is cut off
  local cfg=$model$SUFFIX
  [ -n "$SUFFIX" ] && cfg=$kind$SUFFIX   # the tiny CPU test of a wide model runs the tiny config
  $PY Tools/train/train.py --model "$cfg" --data "$DATA" --out "$run" --minutes "$minutes" \
    --log "$OUT/${name}_train_log.jsonl" $TRAIN_ARGS | grep -v '"summary"'
  # 15 MiB pieces of one tar; a wide model's (gzip -1) is more than one call can bring
  # back (64 MiB), so only the first FIRST_PIECES (default all) go out now, the rest with `pieces`
  if [ "$model" = "$kind" ]; then
    (cd "$run" && tar -cf - "$kind" | split -b 15M -d - "pieces/$name.tar.")
  else
    (cd "$run" && mv "$kind" "$name" && tar -cf - "$name" | gzip -1 | split -b 15M -d - "pieces/$name.tar.gz.")
  fi
  local i=0
  for f in "$run"/pieces/*; do
    if [ "$i" -lt "${FIRST_PIECES:-99}" ]; then cp "$f" "$OUT/"; fi
    i=$((i + 1))
  done
  cp "$run/summary_$kind.json" "$OUT/summary_$name.json"
  cp "$run/val_prompts.json" "$OUT/"
  echo "summary: $($PY -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$run/summary_$kind.json")"
  $PY -c "import json; d=json.load(open('$DATA/tokens.json')); print('data: tokenizer', d['tokenizer_sha256'][:16], 'train', d['train']['sha256'][:16], 'val', d['val']['sha256'][:16])"
  ls -l "$run/pieces" "$OUT"
  echo "call seconds: $(( $(date +%s) - T0 ))"
}

pieces() {  # $1 = model, $2 = index of the first piece to bring back (0-based), $3 = how many
  local i=0
  for f in "$RUNS/$1"/pieces/*; do
    if [ "$i" -ge "$2" ] && [ "$i" -lt $(($2 + $3)) ]; then cp "$f" "$OUT/"; fi
    i=$((i + 1))
  done
  ls -l "$OUT"
}

case "${1:-}" in
  prep)
    { prep_data; } 2>&1 | tee "$OUT/prep_log.txt"
    cp "$DATA/manifest.json" "$DATA/tokens.json" "$DATA/tokenizer.json" "$OUT/"
    if [ "$PROBE_SECONDS" != 0 ]; then
      for kind in ngram twin; do
        $PY Tools/train/train.py --model "$kind$SUFFIX" --data "$DATA" --out "$RUNS/probe" --probe-seconds "$PROBE_SECONDS" $TRAIN_ARGS \
          | grep -E '"probe"|first_step' | tee -a "$OUT/prep_log.txt"
        cp "$RUNS/probe/probe_$kind$SUFFIX.jsonl" "$OUT/probe_$kind.jsonl"
      done
    fi
    ls -l "$OUT"
    echo "call seconds: $(( $(date +%s) - T0 ))"
    ;;
  ngram|twin|ngram-wide|twin-wide) train_one "$1" ;;
  pieces) pieces "$2" "$3" "$4" ;;
  *) echo "usage: device_run.sh prep|ngram|twin|ngram-wide|twin-wide | pieces MODEL FIRST COUNT" >&2; exit 2 ;;
esac
