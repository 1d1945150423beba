"""Helpers shared by the ASR benchmarks: model configs, synthetic speech-like
features and audio, memory measurement, one subprocess per measurement, and
markdown output. Imports torch, numpy and the recognizer model only (no
soundfile, soxr or sentencepiece), so encoder-only benchmarks run on a machine
that has nothing else.

Letters: T input frames (10 ms), M mel bins, P pattern frames.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech.asr.config import AsrConfig, ChunkGeometry  # noqa: E402

SHIPPED_CONFIG = ROOT / "speech" / "models" / "asr" / "config.json"
FRAMES_PER_SECOND = 100  # fbank frames (10 ms hop)
RESULT_PREFIX = "RESULT "
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ------------------------------------------------------------------ configs


def asr_config(name: str) -> AsrConfig:
    """``default``: the shipped model's config if present, else ``AsrConfig()``;
    ``small`` / ``large``: the ChunkFormer paper's encoder dimensions."""
    if name == "default":
        return (
            AsrConfig.load(SHIPPED_CONFIG) if SHIPPED_CONFIG.is_file() else AsrConfig()
        )
    if name == "small":
        return AsrConfig(
            d_model=256,
            num_heads=4,
            ffn_dim=1024,
            num_layers=12,
            conv_kernel=15,
            subsampling_channels=256,
        )
    if name == "large":
        return AsrConfig(
            d_model=512,
            num_heads=8,
            ffn_dim=2048,
            num_layers=17,
            conv_kernel=15,
            subsampling_channels=512,
        )
    raise SystemExit(f"unknown config {name!r} (default, small or large)")


def random_model(config: AsrConfig, device: str, dtype: str) -> Any:
    """An ``AsrModel`` with random weights (seed 0) in eval mode."""
    from speech.asr.model import AsrModel

    torch.manual_seed(0)
    return AsrModel(config).eval().to(device=device, dtype=DTYPES[dtype])


def parse_geometry(text: str) -> ChunkGeometry:
    chunk, left, right = (int(v) for v in text.split(","))
    return ChunkGeometry(chunk, left, right)


def parse_durations(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


# ------------------------------------------------------- synthetic signals


def speech_like(start: int, count: int, sample_rate: int = 16000) -> np.ndarray:
    """Samples [start, start + count) of a deterministic speech-like signal:
    harmonic tones with a wandering pitch, gated at a syllable rate (4 Hz),
    plus noise bursts (fricatives). float32 in [-1, 1]; any block of any
    length can be made on its own, so hours are written in bounded memory."""
    t = (start + np.arange(count, dtype=np.float64)) / sample_rate
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.3 * t) + 15.0 * np.sin(2 * np.pi * 1.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate + 2 * np.pi * 120.0 * t[0]
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllable = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    pause = (np.sin(2 * np.pi * 0.13 * t) > -0.8).astype(np.float64)
    rng = np.random.default_rng(start)
    noise = rng.standard_normal(count) * (np.sin(2 * np.pi * 4.0 * t) < -0.6)
    signal = 0.25 * pause * (syllable * voiced + 0.15 * noise)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def feature_pattern(seconds: float = 20.0, num_mel_bins: int = 80) -> torch.Tensor:
    """(P, M) real log-mel features of ``seconds`` of ``speech_like`` audio,
    to be tiled into inputs of any length."""
    from speech.asr.frontend import FbankConfig, fbank_torch

    samples = torch.from_numpy(speech_like(0, int(seconds * 16000)))
    return fbank_torch(samples, FbankConfig(num_mel_bins=num_mel_bins))


def tiled(
    pattern: torch.Tensor, start: int, count: int, device: str, dtype: torch.dtype
) -> torch.Tensor:
    """Frames [start, start + count) of the endless repetition of ``pattern``:
    (count, M) on ``device``."""
    pattern = pattern.to(device, dtype)
    index = (start + torch.arange(count, device=device)) % pattern.shape[0]
    return pattern[index]


def frames(seconds: float) -> int:
    return int(round(seconds * FRAMES_PER_SECOND))


# ---------------------------------------------------------------- measuring


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_cuda_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_gib(device: str) -> float | None:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def run_worker(script: str, payload: dict[str, Any], timeout: float = 3600) -> dict:
    """Run ``script --worker JSON`` in a fresh interpreter (so memory peaks of
    different measurements never mix) and return the dict it reports."""
    command = [sys.executable, script, "--worker", json.dumps(payload)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
    return {"error": " | ".join(tail) or f"exit status {done.returncode}"}


def report(result: dict[str, Any]) -> None:
    """What a worker prints last (read by ``run_worker``)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ------------------------------------------------------------------ output


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
