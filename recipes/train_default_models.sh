#!/usr/bin/env bash
# Build the corpora and train the three default models (ASR, FastPitch,
# vocoder) concurrently on one GPU machine, in the background.
#
#   bash recipes/data/device_bundle.sh soundfile==0.14.0 cffi==2.1.1 \
#       pycparser==3.12 soxr==1.1.0          # here, once: fills .carry/
#   bash recipes/train_default_models.sh start   # there: corpora, then launch
#   bash recipes/train_default_models.sh status  # there: progress
#   bash recipes/train_default_models.sh evaluate        # there: ASR WER table
#                     (of run_asr/model; ASR_EVAL_MODEL=best for run_asr/best)
#   bash recipes/train_default_models.sh collect OUTDIR  # there: results
#
# CORPUS_JOBS (default 16) synthesis processes build the ASR corpus of
# ASR_UTTS / ASR_DEV_UTTS / ASR_TEST_UTTS utterances (36000 / 500 / 800) and
# ASR_LONG_FORM long recordings (2), from TEXT_FILE (.carry/sentences.txt).
# HELD_OUT_SENTENCES ("800 500") test and dev sentences are set aside in both
# corpora (build_corpus --held-out-sentences): training reads none of them,
# whatever ASR_TEST_UTTS and ASR_DEV_UTTS are.
# ASR_TUNE_VOICES (e.g. "mbrola:us1 mbrola:us2 mbrola:us3 mbrola:en1", with
# .carry/mbroladeb carried) adds a tune split, the dev sentences read by
# voices in neither training nor test, and the ASR trainer evaluates on it
# instead of dev, so its best/ follows unseen voices.
# WORK (default /tmp/work) holds corpora, runs and logs; MINUTES (default 18)
# is each training's wall-clock budget. ASR_RUN (default asr) names the ASR
# run: its folder is $WORK/run_$ASR_RUN and its log $WORK/$ASR_RUN.log, so two
# ASR runs can share one corpus and one machine, each on its own GPUs
# (ASR_GPUS=0,1 sets CUDA_VISIBLE_DEVICES for it), e.g. a second arm:
#   ASR_RUN=small ASR_GPUS=2,3 TRAIN=asr ... bash recipes/train_default_models.sh start
# Such an arm's main process gets ASR_THREADS (default 4) CPU threads
# (OMP_NUM_THREADS): four arms each starting one per core stalled for minutes
# in the CPU work of their first steps (feature statistics; load 254 on 64
# cores) where they took seconds with 4.
# ASR_INIT_PACK=DIR starts the run from an int8 transport copy of a model
# (e.g. of the shipped model: python -m recipes.asr.pack_weights pack
# speech/models/asr .carry/asr, 20.6 MB in two files against its 40 MB):
# unpacked into $WORK/init_$ASR_RUN and given to the trainer as --init-from.
# A chain of runs (each from the last one's weights) on one machine needs a
# fresh run folder per step: ASR_RUN=NAME, or clear $WORK/run_asr.
# Rerunning `start` resumes every run
# from its checkpoint (corpora that are gone are rebuilt from the seed: the
# same sentences, voices and prosody; espeak-ng's audio varies by a few
# samples between identical calls, so not bit for bit).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/work}
MINUTES=${MINUTES:-18}
ASR_MINUTES=${ASR_MINUTES:-$MINUTES}
TTS_MINUTES=${TTS_MINUTES:-$MINUTES}
VOC_MINUTES=${VOC_MINUTES:-$MINUTES}
TRAIN=${TRAIN:-"asr fastpitch vocoder"}  # which models to train
ASR_RUN=${ASR_RUN:-asr}
TEXT_FILE=${TEXT_FILE:-.carry/sentences.txt}  # the sentences the corpora read
if [[ ! $ASR_RUN =~ ^[A-Za-z0-9_-]+$ || $ASR_RUN == fastpitch || $ASR_RUN == vocoder ]]; then
  echo "ASR_RUN=$ASR_RUN: use letters, digits, _ and - only, and not fastpitch or vocoder" >&2
  exit 2
fi
wants() { [[ " $TRAIN " == *" $1 "* ]]; }
mkdir -p "$WORK"

start() {
  mkdir -p "$WORK"
  if [[ -z ${SKIP_DEVICE_SETUP:-} ]]; then  # set it where flite etc. are installed
    set +eo pipefail  # the setup script is written for interactive shells
    # shellcheck disable=SC1091
    source recipes/data/device_setup.sh
    set -eo pipefail
  fi
  export PYTHONUNBUFFERED=1
  if [[ ! -f $WORK/asr/test.jsonl ]]; then
    python -m recipes.data.build_corpus --out "$WORK/asr" --text-file "$TEXT_FILE" \
      --jobs "${CORPUS_JOBS:-16}" --train-utts "${ASR_UTTS:-36000}" --dev-utts "${ASR_DEV_UTTS:-500}" \
      --test-utts "${ASR_TEST_UTTS:-800}" --long-form "${ASR_LONG_FORM:-2}" \
      --held-out-sentences ${HELD_OUT_SENTENCES:-800 500} \
      ${ASR_TUNE_VOICES:+--tune-voices $ASR_TUNE_VOICES} \
      ${ASR_CORPUS_EXTRA:-} > "$WORK/corpus_asr.log" 2>&1
  fi
  if (wants fastpitch || wants vocoder) && [[ ! -f $WORK/tts/metadata.csv ]]; then
    python -m recipes.data.build_corpus --out "$WORK/tts" --text-file "$TEXT_FILE" \
      --layout ljspeech --voices flite:slt --sample-rate 0 --train-utts "${TTS_UTTS:-8000}" \
      --dev-utts 300 --test-utts 0 --held-out-sentences ${HELD_OUT_SENTENCES:-800 500} \
      --jobs 16 > "$WORK/corpus_tts.log" 2>&1
  fi
  tail -n 3 "$WORK"/corpus_*.log || true
  if wants asr; then
  local asr_dev=dev
  if [[ -n ${ASR_TUNE_VOICES:-} ]]; then asr_dev=tune; fi
  local init=()
  if [[ -n ${ASR_INIT_PACK:-} ]]; then  # an int8 transport copy (recipes/asr/pack_weights.py)
    # unpacked at every start (the same copy gives the same bytes): a folder
    # left by an earlier chain step would otherwise start this one from the
    # wrong weights; a run folder whose run started from other weights is
    # then refused by the trainer
    python -m recipes.asr.pack_weights unpack "$ASR_INIT_PACK" "$WORK/init_$ASR_RUN"
    init=(--init-from "$WORK/init_$ASR_RUN")
  fi
  # ASR_LAUNCH="python -m torch.distributed.run --standalone --nproc_per_node 2" for DDP
  ${ASR_GPUS:+env "CUDA_VISIBLE_DEVICES=$ASR_GPUS" "OMP_NUM_THREADS=${ASR_THREADS:-4}"} setsid nohup ${ASR_LAUNCH:-python} -m recipes.asr.train --train "$WORK/asr/train.jsonl" \
    --dev "$WORK/asr/$asr_dev.jsonl" --out "$WORK/run_$ASR_RUN" --max-minutes "$ASR_MINUTES" \
    --total-steps 40000 --fit-schedule 300 --batch-seconds "${ASR_BATCH_SECONDS:-500}" \
    --workers "${ASR_WORKERS:-8}" ${ASR_LR:+--lr "$ASR_LR"} ${ASR_WARMUP:+--warmup "$ASR_WARMUP"} \
    --eval-every 1500 --save-every 1000 --join-fraction "${ASR_JOIN:-0.3}" \
    "${init[@]}" ${ASR_EXTRA:-} > "$WORK/$ASR_RUN.log" 2>&1 < /dev/null &
  fi
  if wants fastpitch; then
  setsid nohup python -m recipes.tts.train_fastpitch --data "$WORK/tts" \
    --out "$WORK/run_fastpitch" --max-minutes "$TTS_MINUTES" --workers 4 \
    ${TTS_EXTRA:-} > "$WORK/fastpitch.log" 2>&1 < /dev/null &
  fi
  if wants vocoder; then
  setsid nohup python -m recipes.tts.train_vocoder --data "$WORK/tts" \
    --out "$WORK/run_vocoder" --max-minutes "$VOC_MINUTES" \
    --batch-size 32 --segment-frames 48 --context-frames 16 --lr 1e-3 --warmup 300 \
    --total-steps "${VOC_STEPS:-12000}" --adversarial-start "${VOC_ADV:-2500}" \
    --save-every 1000 --eval-every 2000 \
    ${VOC_EXTRA:-} > "$WORK/vocoder.log" 2>&1 < /dev/null &
  fi
  sleep 5
  echo "started; logs in $WORK/{$ASR_RUN,fastpitch,vocoder}.log"
}

status() {
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
  for log in "$ASR_RUN" fastpitch vocoder; do
    echo "== $log"
    tr '\r' '\n' < "$WORK/$log.log" | grep -v '^\s*$' | grep -vi "warn" | tail -n 4 || true
  done
}

evaluate() {
  local model=$WORK/run_$ASR_RUN/${ASR_EVAL_MODEL:-model}  # ASR_EVAL_MODEL=best: the best dev evaluation's
  if [[ ! -d $model || ! -f $WORK/asr/test.jsonl ]]; then
    echo "evaluate: no $model or $WORK/asr/test.jsonl (is WORK set as for start?)" >&2
    return 1
  fi
  source recipes/data/device_setup.sh >/dev/null 2>&1 || true
  local status=0  # the table, or the error, is printed either way
  python -m recipes.asr.evaluate --model "$model" --manifest "$WORK/asr/test.jsonl" \
    --long-form "$WORK/asr/longform.jsonl" --device "${EVAL_DEVICE:-cuda}" \
    --json "$WORK/${ASR_RUN}_eval.json" > "$WORK/${ASR_RUN}_eval.md" 2>&1 || status=$?
  cat "$WORK/${ASR_RUN}_eval.md"
  return "$status"
}

collect() {
  local out=$1
  mkdir -p "$out"
  for run in "run_$ASR_RUN/model:$ASR_RUN" "run_$ASR_RUN/best:${ASR_RUN}_best" \
    run_fastpitch/tts:fastpitch run_vocoder/vocoder:vocoder; do
    local src=${run%%:*} name=${run##*:}
    [[ -d $WORK/$src ]] && tar -C "$WORK/$src" -cf "$out/$name.tar" .
  done
  for log in "$ASR_RUN:200000" fastpitch:100000 vocoder:100000; do
    # only the logs of runs this machine started (no empty files for the rest)
    local log_name=${log%%:*} bytes=${log##*:}
    if [[ -f $WORK/$log_name.log ]]; then
      tail -c "$bytes" "$WORK/$log_name.log" > "$out/$log_name.log"
    fi
  done
  cp "$WORK/tts/metadata_dev.csv" "$out/tts_dev_metadata.csv" 2>/dev/null || true
  cp "$WORK/${ASR_RUN}_eval.md" "$out/" 2>/dev/null || true
  ls -la "$out"
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  evaluate) evaluate ;;
  collect) collect "${2:?output folder}" ;;
  *) echo "usage: $0 start|status|evaluate|collect OUTDIR" >&2; exit 2 ;;
esac
