"""Fixtures shared by the test modules: a tiny random recognizer saved as a
model folder, and real speech made with flite."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech.asr.config import AsrConfig, ChunkGeometry
from speech.asr.model import AsrModel, save_model
from speech.asr.tokenizer import Tokenizer

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine and a penny saved is a penny earned",
]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    tokenizer = Tokenizer.train(TEXTS * 20, 40, root / "tok")
    torch.manual_seed(3)
    config = AsrConfig(
        d_model=32,
        num_heads=4,
        ffn_dim=48,
        num_layers=3,
        conv_kernel=5,
        subsampling_channels=8,
        vocab_size=tokenizer.vocab_size,
        dropout=0.0,
        offline=ChunkGeometry(8, 16, 4),
        streaming=ChunkGeometry(4, 12, 0),
    )
    model = AsrModel(config)
    with torch.no_grad():
        model.feature_mean.fill_(8.0)
        model.feature_istd.fill_(0.3)
        model.ctc.bias[0] = -3.0  # a random model that emits tokens
    model.tokenizer = tokenizer
    save_model(model, root / "asr", half=False)
    return root / "asr"


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    parts = []
    for text in TEXTS:
        wav = root / "part.wav"
        subprocess.run(
            ["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True
        )
        samples, rate = sf.read(wav, dtype="float32")
        parts += [samples, np.zeros(rate // 2, dtype=np.float32)]
    audio = np.concatenate(parts)
    path = root / "speech.flac"
    sf.write(path, audio, 16000)
    return path
