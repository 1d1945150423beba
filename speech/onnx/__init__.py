"""ONNX Runtime back end: the recognizer and the synthesizer on graphs written
by ``speech export onnx``, with numpy and onnxruntime only (never torch).

    from speech import load_recognizer, load_synthesizer
    asr = load_recognizer(backend="onnx")          # speech/models/onnx/asr
    tts = load_synthesizer(backend="onnx")         # speech/models/onnx/tts

Execution providers: ``device="cpu"`` (default) runs on the CPU provider;
``device="cuda"`` or ``"cuda:N"`` needs the ``onnxruntime-gpu`` package
(``pip install speech-toolkit[gpu]``) and selects its CUDA provider.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

__all__ = [
    "DEFAULT_ONNX_DIR",
    "Graph",
    "default_threads",
    "find_model_folder",
    "providers_for",
    "shared_cpu_arena",
]

DEFAULT_ONNX_DIR = Path(__file__).resolve().parent.parent / "models" / "onnx"
THREADS_ENV = "SPEECH_ONNX_THREADS"

logger = logging.getLogger("speech.onnx")
_shared_arena_lock = threading.Lock()
_shared_arena: bool | None = None  # None: not tried yet


def shared_cpu_arena() -> bool:
    """Register one CPU memory arena in the ONNX Runtime environment for
    every CPU session of this process to allocate from (once; True when it
    is there). Without it each session keeps an arena of its own, grown to
    its largest run and never given back: the offline encoder runs one
    session per layer, so a long file held every layer's peak at once
    (``speech transcribe --backend onnx`` of a 10-minute file with the warp
    ensemble: 7.1 GB resident and 16.0 s, against 1.2 GB and 8.2 s with one
    arena; ``benchmarks/cli_backends.py``)."""
    global _shared_arena
    with _shared_arena_lock:
        if _shared_arena is None:
            info = ort.OrtMemoryInfo(
                "Cpu",
                ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR,
                0,
                ort.OrtMemType.DEFAULT,
            )
            try:
                # 0 / -1: no cap; the default growth, chunk and release limits
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
                _shared_arena = True
            except Exception as error:  # an onnxruntime build without it
                _shared_arena = False
                logger.warning("ONNX Runtime: no shared CPU arena (%s)", error)
        return _shared_arena


def default_threads() -> int:
    """Intra-op threads per graph: ``$SPEECH_ONNX_THREADS``, else up to 4
    (more rarely helps these small per-chunk graphs)."""
    value = os.environ.get(THREADS_ENV)
    if value:
        return max(1, int(value))
    return max(1, min(4, os.cpu_count() or 1))


def providers_for(device: str = "cpu") -> list[Any]:
    """Execution providers for ``device`` ("cpu", "cuda", "cuda:N").

    Raises:
        RuntimeError: CUDA asked for but this onnxruntime has no CUDA provider.
    """
    device = str(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(
                "device 'cuda' needs the CUDA build of ONNX Runtime: "
                "pip install 'speech-toolkit[gpu]' (onnxruntime-gpu, in place "
                "of onnxruntime); available providers: "
                + ", ".join(ort.get_available_providers())
            )
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ValueError(f"unknown device {device!r} (use 'cpu', 'cuda' or 'cuda:N')")


class Graph:
    """One ONNX Runtime session and its metadata.

    ``run(**inputs)`` returns ``{output name: array}``. ``spin``: let idle
    intra-op threads spin for the next call. Right for a graph that runs
    alone call after call (the fused ASR step: ~1.3x faster streaming on two
    cores); wrong where several sessions alternate (per-layer ASR graphs, the
    TTS encoder/decoder/vocoder), whose spinning threads then take the cores
    from the session that runs (TTS synthesis ~1.4x slower; see
    ``benchmarks/onnx_vs_torch.py``).
    """

    def __init__(
        self,
        path: Path,
        device: str = "cpu",
        threads: int | None = None,
        spin: bool = False,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spin else "0"
        )
        if str(device) == "cpu" and shared_cpu_arena():
            options.add_session_config_entry("session.use_env_allocators", "1")
        self.path = path
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=providers_for(device)
        )
        self.metadata: dict[str, str] = dict(
            self.session.get_modelmeta().custom_metadata_map
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, **inputs: Any) -> dict[str, Any]:
        feeds = {name: inputs[name] for name in self.input_names}
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs, strict=True))

    def meta_int(self, key: str) -> int:
        return int(self.metadata[key])

    def meta_json(self, key: str) -> Any:
        return json.loads(self.metadata[key])


def find_model_folder(
    path: str | os.PathLike[str] | None,
    kind: Literal["asr", "tts"],
    marker: str,
) -> Path:
    """The folder holding ``marker``: ``path`` itself or its ``kind``
    subfolder (an export's top folder); ``None`` means the shipped export."""
    base = Path(path) if path is not None else DEFAULT_ONNX_DIR
    for folder in (base, base / kind):
        if (folder / marker).is_file():
            return folder
    raise FileNotFoundError(
        f"{base}: no {marker} (expected a folder written by "
        f"'speech export onnx', or its {kind}/ subfolder)"
    )
