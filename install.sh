#!/usr/bin/env bash
# Install everything the toolkit and its tests need on Debian/Ubuntu:
# system packages (speech engines for corpora and tests, Chromium for the
# browser test) and a Python virtual environment in .venv with the package
# installed in editable mode.
#
#   ./install.sh            # as root (or with sudo available)
#   ./install.sh --no-system  # skip apt (packages already present)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
SYSTEM_PACKAGES=(flite espeak-ng sox chromium chromium-driver fortunes fortunes-min
  festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts)

if [[ "${1:-}" != "--no-system" ]]; then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch and torchaudio are pinned together: torchaudio 2.11 loads only with torch 2.11
.venv/bin/python -m pip install -q "torch==2.11.0" "torchaudio==2.11.0"
.venv/bin/python -m pip install -q -e ".[dev]"
# ONNX Runtime graphs of the shipped models (derived from the weights in
# speech/models/, so they are built here rather than stored twice in git)
marker=speech/models/onnx/asr/asr_step.onnx
if [[ ! -f $marker ]] || find speech/models/asr speech/models/tts -newer "$marker" | grep -q .; then
  .venv/bin/speech export onnx --out speech/models/onnx --int8 >/dev/null
fi
# The shipped LM's parsed arrays, cached once (~/.cache/speech, or
# SPEECH_CACHE_DIR): the first `speech transcribe --beam-size 16` then reads
# them in 0.1 s instead of parsing the ARPA file for 2.7 s
.venv/bin/python -c 'from speech.asr.lm import NgramLM; NgramLM.load("speech/models/asr/lm.arpa.gz")'
echo "installed: $(.venv/bin/python -c 'import torch, speech; print("torch", torch.__version__, "speech", speech.__version__)')"
