#!/usr/bin/env bash
# One fine-tuning step of the ASR model on a lent GPU machine, in the
# foreground and within a wall-clock budget: build a fresh training corpus
# (a new --draw of sentences, voices and prosody), train from a transport
# copy of the weights for the time left, and write the last weights back as a
# transport copy. A chain of such steps (each from the one before) is how the
# shipped model grew past what one 10-minute call can train.
#
#   bash recipes/data/device_bundle.sh            # here, once: fills .carry/
#   python -m recipes.asr.pack_weights pack speech/models/asr .carry/asr
#   # there (the device tool, carrying .carry/deb .carry/festdeb .carry/picodeb
#   # .carry/whl .carry/sentences.txt .carry/wordnet.txt.gz .carry/asr):
#   DRAW=42 TOTAL_MIN=8 ASR_UTTS=24000 CORPUS_EXTRA="--raised-ae-fraction 0.5" \
#       bash recipes/asr/device_finetune.sh start
#   # the next step on the same warm machine and a new deal, from the last
#   # step's weights packed there (nothing travels between the steps):
#   python -m recipes.asr.pack_weights pack /tmp/w/run_asr/model /tmp/chain &&
#       DRAW=43 INIT=/tmp/chain TOTAL_MIN=7 bash recipes/asr/device_finetune.sh start
#   # or on the corpus already built:
#   INIT=/tmp/chain TOTAL_MIN=5 bash recipes/asr/device_finetune.sh fresh
#
# start: clears $WORK (default /tmp/w), builds the corpus, trains.
# fresh: keeps $WORK/asr (the corpus) when it is there, clears the run folder
#        (the trainer refuses a folder that holds a run from other weights).
# TOTAL_MIN (default 6) is the whole command's budget: the training gets what
# the corpus leaves of it; startup and the packing add about a minute.
# ASR_UTTS (24000) training utterances, DEV_UTTS (500) the trainer's dev
# set, DRAW (42) the corpus draw, INIT (.carry/asr) the packed weights to
# start from, CORPUS_EXTRA more build_corpus flags, ASR_EXTRA more trainer flags (after --save-every 250),
# ASR_LR (3e-4), ASR_WARMUP (200), ASR_BATCH_SECONDS (1000); TEXT_FILE
# (.carry/sentences.txt) and EXTRA_TEXT (.carry/wordnet.txt.gz, a third of the
# training sentences; empty: none) the text read; SKIP_DEVICE_SETUP=1 where
# the speech engines are installed; TEST_UTTS (200) and PICO_FRACTION (0.1)
# as build_corpus's; HELD_OUT_SENTENCES ("800 500") the test and dev
# sentences set aside, which training never reads (the evaluation corpus
# reads all of them: --test-utts 800 --dev-utts 500).
# Results go to $OUT (the device tool's folder; default $WORK/out): model/
# (the transport copy, two files under 16 MB) and the ends of the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-}
if [[ $mode != start && $mode != fresh ]]; then
  echo "usage: $0 start|fresh" >&2
  exit 2
fi
begin=$SECONDS
WORK=${WORK:-/tmp/w}
OUT=${OUT:-$WORK/out}
TOTAL_MIN=${TOTAL_MIN:-6}
INIT=${INIT:-.carry/asr}
if [[ ! -f $INIT/config.json ]]; then
  echo "device_finetune: $INIT holds no packed model (pack_weights pack MODEL $INIT)" >&2
  exit 2
fi
if [[ $mode == start ]]; then rm -rf "$WORK"; fi
rm -rf "$WORK/run_asr" "$WORK/init_asr"
mkdir -p "$WORK" "$OUT"

export PYTHONUNBUFFERED=1
# the corpus, by the all-in-one script training nothing yet (it also sets the
# speech engines up, unless SKIP_DEVICE_SETUP; a built corpus is kept)
corpus_extra="--draw ${DRAW:-42} --pico-fraction ${PICO_FRACTION:-0.1}"
extra_text=${EXTRA_TEXT-.carry/wordnet.txt.gz}
if [[ -n $extra_text ]]; then
  corpus_extra+=" --extra-train-text $extra_text --extra-fraction 0.33"
fi
if ! WORK=$WORK TRAIN=none TEXT_FILE=${TEXT_FILE:-.carry/sentences.txt} \
  CORPUS_JOBS=${CORPUS_JOBS:-16} ASR_UTTS=${ASR_UTTS:-24000} ASR_DEV_UTTS=${DEV_UTTS:-500} \
  ASR_TEST_UTTS=${TEST_UTTS:-200} ASR_LONG_FORM=0 \
  ASR_CORPUS_EXTRA="$corpus_extra ${CORPUS_EXTRA:-}" \
  bash recipes/train_default_models.sh start > /dev/null; then
  tail -n 20 "$WORK/corpus_asr.log" >&2 || true
  exit 1
fi
tail -n 3 "$WORK/corpus_asr.log" || true

# what is left of the budget, less a minute for the trainer's startup and the packing
minutes=$(python3 -c "print(max(1.0, round(($TOTAL_MIN * 60 - ($SECONDS - $begin) - 60) / 60, 2)))")
echo "corpus ready after $((SECONDS - begin)) s; training for $minutes min"

WORK=$WORK TRAIN=asr SKIP_DEVICE_SETUP=1 ASR_MINUTES=$minutes ASR_WORKERS=${ASR_WORKERS:-14} \
  ASR_BATCH_SECONDS=${ASR_BATCH_SECONDS:-1000} ASR_LR=${ASR_LR:-3e-4} \
  ASR_WARMUP=${ASR_WARMUP:-200} ASR_INIT_PACK=$INIT \
  ASR_EXTRA="--save-every 250 ${ASR_EXTRA:-}" \
  bash recipes/train_default_models.sh start
# the trainer runs detached (setsid): wait for it by its command line
while pgrep -f "recipes.asr.train --train $WORK/asr" > /dev/null; do sleep 5; done
tr '\r' '\n' < "$WORK/asr.log" | grep -v '^\s*$' | tail -n 12
tail -c 100000 "$WORK/asr.log" > "$OUT/asr.log"
tail -c 20000 "$WORK/corpus_asr.log" > "$OUT/corpus_asr.log"
if [[ ! -f $WORK/run_asr/model/config.json ]]; then
  echo "device_finetune: the trainer left no model (log above)" >&2
  exit 1
fi
python -m recipes.asr.pack_weights pack "$WORK/run_asr/model" "$OUT/model"
echo "done in $((SECONDS - begin)) s"
