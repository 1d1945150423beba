"""Which back end runs a model when the user leaves it to us
(``--backend auto``, the default of ``speech transcribe``, ``speech
synthesize`` and ``speech serve``).

On the CPU, ONNX Runtime on the graphs ``speech export onnx`` wrote is the
faster and the leaner back end, and it never imports torch: with the
shipped models on two cores, ``speech transcribe`` of a 10-minute recording
takes 8.2 s and 1.2 GB where PyTorch takes 14.1 s and 1.6 GB, and ``speech
synthesize`` of a sentence 0.36 s and 153 MB against 1.32 s and 685 MB
(``benchmarks/cli_backends.py``, results in
benchmarks/results/cli_backends_2026-12-07_cpu.md); ``speech serve``
carries 50 live ASR sessions with endpoint rescoring within 300 ms p95 where
PyTorch carries 30 (``benchmarks/server_load.py``). On a GPU, PyTorch.
"""

from __future__ import annotations

import os
from typing import Literal

__all__ = ["Backend", "choose_backend", "gpu_present", "voice_backend"]

Backend = Literal["torch", "onnx"]


def gpu_present() -> bool:
    """Whether torch may find a GPU here, decided without importing torch
    where no GPU driver is loaded, so that the ONNX path starts without
    torch's import time and memory."""
    # NVIDIA's driver, ROCm's, WSL's GPU pass-through
    drivers = ("/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg")
    if not any(os.path.exists(path) for path in drivers):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_backend(
    asr_model: str | None,
    tts_model: str | None,
    device: str = "cpu",
    asr: bool = True,
    tts: bool = True,
) -> Backend:
    """ONNX Runtime on CPU when every model the command loads has an ONNX
    export (a named folder written by ``speech export onnx``, or its ``asr``
    / ``tts`` subfolder; for a model not named, the shipped export in
    speech/models/onnx that install.sh builds, if it was made from the
    shipped weights as they are now), PyTorch otherwise (a GPU, a PyTorch
    model folder, no export or a stale one)."""
    if device != "cpu":
        return "torch"
    from speech.onnx import find_model_folder
    from speech.onnx.asr import STEP_FILE, export_digest, is_stale
    from speech.onnx.tts import ENCODER_FILE

    wanted = [(asr_model, "asr", STEP_FILE)] if asr else []
    wanted += [(tts_model, "tts", ENCODER_FILE)] if tts else []
    for model, kind, marker in wanted:
        try:
            folder = find_model_folder(model, kind, marker)
        except FileNotFoundError:
            return "torch"
        # an update brought new weights and install.sh has not run since:
        # run them, not the export of the old ones
        if kind == "asr" and model is None and is_stale(export_digest(folder)):
            return "torch"
    return "onnx"


def voice_backend(
    voice: str | os.PathLike[str] | None, device: object = "cpu"
) -> Backend:
    """``choose_backend`` for a load of one TTS voice (``load_synthesizer``'s
    ``backend="auto"``): ``voice`` a folder or path-like, None for the
    shipped one; ``device`` a name or a ``torch.device``."""
    folder = None if voice is None else os.fspath(voice)
    return choose_backend(None, folder, str(device), asr=False)
