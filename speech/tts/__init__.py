"""Streaming text to speech: Incremental FastPitch + a streaming vocoder.

    from speech.tts import load_synthesizer
    tts = load_synthesizer()                 # the shipped voice, speech/models/tts
    audio = tts.synthesize("Hello world.")   # float32 at tts.sample_rate
    for chunk in tts.stream("Hello world."):
        ...

Modules: ``config`` (FastPitchConfig), ``fastpitch`` (the acoustic model,
``save_tts``/``load_tts``), ``decoder`` (the chunked streaming decoder and its
``DecoderState``), ``alignment`` (learned alignment for training), ``pitch``
(f0 and energy targets), ``vocoder`` and ``griffin_lim`` (mel to waveform),
``synthesizer`` (text in, audio out), ``synthesizer_base`` (its torch-free
text front end and API, shared with ``speech.onnx.tts``).

The names below load on first use, so that ``speech.tts.synthesizer_base``
imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speech.tts.audio import MelConfig, MelSpectrogram
    from speech.tts.config import FastPitchConfig
    from speech.tts.decoder import (
        DecoderState,
        IncrementalDecoder,
        chunk_context_distance,
    )
    from speech.tts.fastpitch import FastPitch, load_tts, save_tts
    from speech.tts.synthesizer import (
        DEFAULT_TTS_DIR,
        Synthesizer,
        default_synthesizer,
        load_synthesizer,
    )

__all__ = [
    "DEFAULT_TTS_DIR",
    "DecoderState",
    "FastPitch",
    "FastPitchConfig",
    "IncrementalDecoder",
    "MelConfig",
    "MelSpectrogram",
    "Synthesizer",
    "chunk_context_distance",
    "default_synthesizer",
    "load_synthesizer",
    "load_tts",
    "save_tts",
]

_MODULE_OF = {
    "DEFAULT_TTS_DIR": "synthesizer",
    "DecoderState": "decoder",
    "FastPitch": "fastpitch",
    "FastPitchConfig": "config",
    "IncrementalDecoder": "decoder",
    "MelConfig": "audio",
    "MelSpectrogram": "audio",
    "Synthesizer": "synthesizer",
    "chunk_context_distance": "decoder",
    "default_synthesizer": "synthesizer",
    "load_synthesizer": "synthesizer",
    "load_tts": "fastpitch",
    "save_tts": "fastpitch",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"speech.tts.{module}"), name)
