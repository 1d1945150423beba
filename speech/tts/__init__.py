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
``synthesizer`` (text in, audio out).
"""

from speech.tts.audio import MelConfig, MelSpectrogram
from speech.tts.config import FastPitchConfig
from speech.tts.decoder import DecoderState, IncrementalDecoder, chunk_context_distance
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
