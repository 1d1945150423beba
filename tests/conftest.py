"""Fixtures shared by the test modules: a tiny random recognizer saved as a
model folder, and real speech made with flite."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech.asr.config import AsrConfig, ChunkGeometry
from speech.asr.model import AsrModel, save_model
from speech.asr.tokenizer import Tokenizer

# parsed-LM cache (speech.asr.lm) of this session, servers started by the
# tests included, kept out of the user's ~/.cache
_cache = tempfile.mkdtemp(prefix="speech-test-cache-")
os.environ["SPEECH_CACHE_DIR"] = _cache
atexit.register(shutil.rmtree, _cache, ignore_errors=True)

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


def flite_speech(
    texts: list[str], folder: Path, voice: str = "slt", pause: float = 0.5
) -> np.ndarray:
    """The texts read by a flite voice, each followed by ``pause`` seconds of
    silence: float32 samples at 16 kHz."""
    parts = []
    for text in texts:
        wav = folder / "part.wav"
        subprocess.run(
            ["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True
        )
        samples, rate = sf.read(wav, dtype="float32")
        parts += [samples, np.zeros(int(pause * rate), dtype=np.float32)]
    return np.concatenate(parts)


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    path = root / "speech.flac"
    sf.write(path, flite_speech(TEXTS, root), 16000)
    return path


# --------------------------------------------------------------- TTS and server


@pytest.fixture(scope="session")
def tts_dir(tmp_path_factory) -> Path:
    """A tiny random voice folder (FastPitch + streaming vocoder) that speaks
    the front end's symbols; each symbol lasts about 4 frames."""
    import math

    from speech.text.phonemize import PHONEME_SYMBOLS
    from speech.tts.config import FastPitchConfig
    from speech.tts.fastpitch import FastPitch, save_tts
    from speech.tts.vocoder import Vocoder, VocoderConfig, save_vocoder

    root = tmp_path_factory.mktemp("voice") / "tiny"
    torch.manual_seed(4)
    model = FastPitch(
        FastPitchConfig(
            symbols=PHONEME_SYMBOLS,
            model_dim=32,
            num_heads=2,
            ffn_dim=48,
            encoder_layers=1,
            decoder_layers=2,
            predictor_dim=16,
            chunk_size=8,
            past_context=16,
            dropout=0.0,
            attention_dropout=0.0,
        )
    )
    with torch.no_grad():
        model.duration_predictor.out.bias.fill_(math.log(1 + 4))
    save_tts(model, root, dtype=torch.float32)
    save_vocoder(
        Vocoder(VocoderConfig(dim=16, intermediate_dim=32, num_layers=1)),
        root / "vocoder",
        dtype=torch.float32,
    )
    return root


@pytest.fixture(scope="session")
def server_models(model_dir, tts_dir):
    """(recognizer, synthesizer) of the tiny models, loaded once."""
    from speech.asr.recognizer import load_recognizer
    from speech.tts.synthesizer import load_synthesizer

    return load_recognizer(model_dir), load_synthesizer(tts_dir)


@pytest.fixture
def serve(server_models):
    """Start servers of the tiny models on 127.0.0.1: ``serve(**config)``
    returns a running ``BackgroundServer``; all are stopped afterwards."""
    from server.app import BackgroundServer, create_app
    from server.config import ServerConfig

    servers = []

    def start(**changes):
        config = ServerConfig(threads=1, **changes)
        recognizer, synthesizer = server_models
        app = create_app(
            config,
            recognizer if config.asr else None,
            synthesizer if config.tts else None,
            voice_name="tiny",
        )
        server = BackgroundServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
