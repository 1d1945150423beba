"""Audio helpers of the corpus builder, for machines without soundfile/soxr.

WAV files are 16-bit PCM mono through the standard library's ``wave``;
resampling uses ``scipy.signal.resample_poly`` (a Kaiser-windowed polyphase
FIR) and falls back to ``torchaudio.functional.resample`` where scipy is
missing. Samples are float32 in [-1, 1].
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

__all__ = ["read_wav", "resample", "trim_silence", "write_wav"]


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Float32 mono samples (channels averaged) and the sample rate."""
    with wave.open(str(path), "rb") as file:
        if file.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        rate, channels = file.getframerate(), file.getnchannels()
        data = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    samples = data.reshape(-1, channels).mean(axis=1, dtype=np.float32) / 32768.0
    return samples.astype(np.float32), rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples as 16-bit PCM mono (clipped to [-1, 1])."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(sample_rate)
        file.writeframes(pcm.tobytes())


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited rate conversion of a mono float signal."""
    if source_rate == target_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    divisor = math.gcd(source_rate, target_rate)
    up, down = target_rate // divisor, source_rate // divisor
    try:
        from scipy.signal import resample_poly
    except ImportError:  # pragma: no cover - scipy is on both machines
        import torch
        from torchaudio.functional import resample as torch_resample

        with torch.no_grad():
            tensor = torch.from_numpy(samples.astype(np.float32))
            return torch_resample(tensor, source_rate, target_rate).numpy()
    return resample_poly(samples, up, down).astype(np.float32)


def trim_silence(
    samples: np.ndarray,
    sample_rate: int,
    keep_seconds: float = 0.05,
    threshold_db: float = -50.0,
    frame_seconds: float = 0.01,
) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``keep_seconds`` at each end.

    A frame is silent when its RMS is ``threshold_db`` below the loudest
    frame's (or below 1e-4 absolute). All-silent input is returned empty.
    """
    frame = max(1, int(frame_seconds * sample_rate))
    count = len(samples) // frame
    if count == 0:
        return samples[:0]
    frames = samples[: count * frame].reshape(count, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    floor = max(rms.max() * 10 ** (threshold_db / 20), 1e-4)
    voiced = np.flatnonzero(rms > floor)
    if len(voiced) == 0:
        return samples[:0]
    keep = int(keep_seconds * sample_rate)
    start = max(0, voiced[0] * frame - keep)
    end = min(len(samples), (voiced[-1] + 1) * frame + keep)
    return samples[start:end]
