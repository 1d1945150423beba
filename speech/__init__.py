"""Streaming speech recognition (ChunkFormer) and synthesis (Incremental
FastPitch) with shipped default models.

    from speech import load_recognizer, load_synthesizer
    text = load_recognizer().transcribe("talk.wav").text
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_recognizer", "load_synthesizer"]


def load_recognizer(*args: Any, **kwargs: Any) -> Any:
    """See ``speech.asr.recognizer.load_recognizer``."""
    from speech.asr.recognizer import load_recognizer as load

    return load(*args, **kwargs)


def load_synthesizer(*args: Any, **kwargs: Any) -> Any:
    """See ``speech.tts.synthesizer.load_synthesizer``; ``backend="onnx"``
    loads ``speech.onnx.tts`` without importing torch (so does ``"auto"``
    where it takes ONNX Runtime)."""
    if kwargs.get("backend") == "auto":  # resolved here: ONNX needs no torch
        from speech.backends import voice_backend

        voice = args[0] if args else kwargs.get("directory")
        device = args[1] if len(args) > 1 else kwargs.get("device", "cpu")
        kwargs["backend"] = voice_backend(voice, device)
    if kwargs.get("backend") == "onnx":
        from speech.onnx.tts import load_synthesizer as load_onnx

        del kwargs["backend"]
        return load_onnx(*args, **kwargs)
    from speech.tts.synthesizer import load_synthesizer as load

    return load(*args, **kwargs)
