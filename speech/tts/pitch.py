"""Prosody targets: frame f0 (YIN in torch), frame energy, per-symbol averages.

Letters: B utterances, S samples, T mel frames, N symbols, K lags.

Frames share the mel spectrogram's grid (``speech.tts.audio``): frame t is
centred on sample ``t * hop`` of a reflect-padded signal, so a waveform of S
samples gives ``S // hop + 1`` frames of f0, energy and mel alike.

The f0 estimator is YIN (de Cheveigné and Kawahara, 2002): the difference
function ``d(tau) = sum_j (x_j - x_{j+tau})^2`` over a window of
``n_fft - tau_max`` samples (computed with FFT correlations), its cumulative
mean normalisation ``d'(tau) = d(tau) tau / sum_{k<=tau} d(k)``, the first
local minimum of ``d'`` under ``threshold`` in the lag range of
[f0_min, f0_max], refined by parabolic interpolation. A frame is unvoiced
(f0 = 0) when no lag dips under the threshold or when it is quiet: 45 dB under
the loudest frame of its utterance, or under an absolute floor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from speech.tts.audio import MelConfig

__all__ = [
    "average_per_symbol",
    "estimate_f0",
    "log_energy",
    "normalize_pitch",
    "semitones_to_normalized",
]

_QUIET_DB = 45.0  # frames this far under the loudest one are unvoiced
_QUIET_FLOOR = 3e-4  # absolute RMS floor (about -70 dBFS)


def _frames(waveform: Tensor, mel: MelConfig) -> Tensor:
    """(B, S) -> (B, T, n_fft) windows centred on ``t * hop``."""
    half = mel.n_fft // 2
    mode = "reflect" if waveform.shape[-1] > half else "constant"
    padded = F.pad(waveform[:, None, :], (half, half), mode=mode)[:, 0]
    return padded.unfold(-1, mel.n_fft, mel.hop_length)


def estimate_f0(
    waveform: Tensor,
    mel: MelConfig | None = None,
    f0_min: float = 60.0,
    f0_max: float = 500.0,
    threshold: float = 0.2,
) -> Tensor:
    """Frame f0 in Hz on the mel frame grid, 0 on unvoiced frames.

    Args:
        waveform: (B, S) or (S,) float audio at ``mel.sample_rate``.
        mel: frame geometry (n_fft is the analysis window, hop the step);
            default ``MelConfig()``.
        f0_min, f0_max: search range in Hz; ``sample_rate / f0_min`` must fit
            in half a window.
        threshold: voicing threshold on the normalised difference (YIN's
            "absolute threshold"; 0.1-0.2 are usual, higher is more voiced).

    Returns:
        (B, T) or (T,) with T = S // hop + 1.
    """
    mel = mel or MelConfig()
    squeeze = waveform.dim() == 1
    x = waveform[None] if squeeze else waveform
    x = x.float()
    rate = mel.sample_rate
    lag_max = min(int(math.ceil(rate / f0_min)), mel.n_fft // 2)
    lag_min = max(int(math.floor(rate / f0_max)), 2)
    width = mel.n_fft - lag_max  # correlation window

    frames = _frames(x, mel)  # (B, T, n_fft)
    frames = frames - frames.mean(-1, keepdim=True)
    size = 1 << (mel.n_fft + width - 1).bit_length()
    spectrum = torch.fft.rfft(frames, size)
    head = torch.fft.rfft(frames[..., :width], size)
    corr = torch.fft.irfft(head.conj() * spectrum, size)[..., : lag_max + 1]  # (B,T,K)
    energy = F.pad(frames.square().cumsum(-1), (1, 0))  # (B, T, n_fft + 1)
    lags = torch.arange(lag_max + 1, device=x.device)
    window_energy = energy[..., lags + width] - energy[..., lags]  # (B, T, K)
    diff = (window_energy[..., :1] + window_energy - 2.0 * corr).clamp(min=0.0)

    running = diff[..., 1:].cumsum(-1)
    cmnd = torch.ones_like(diff)
    cmnd[..., 1:] = diff[..., 1:] * lags[1:] / running.clamp(min=1e-10)

    inner = cmnd[..., lag_min:lag_max]  # lags lag_min .. lag_max - 1
    left = cmnd[..., lag_min - 1 : lag_max - 1]
    right = cmnd[..., lag_min + 1 : lag_max + 1]
    dips = (inner < threshold) & (inner <= left) & (inner <= right)
    has_dip = dips.any(-1)
    first = dips.int().argmax(-1)  # (B, T) first dip (0 if none)
    lag = first + lag_min

    # Parabolic refinement around the chosen lag.
    picked = lag[..., None] + torch.tensor([-1, 0, 1], device=x.device)
    a, b, c = cmnd.gather(-1, picked).unbind(-1)
    curvature = a - 2.0 * b + c
    offset = torch.where(
        curvature > 1e-8, 0.5 * (a - c) / curvature.clamp(min=1e-8), 0.0
    ).clamp(-1.0, 1.0)
    f0 = rate / (lag.float() + offset)

    rms = frames.square().mean(-1).sqrt()  # (B, T)
    loud = rms.amax(-1, keepdim=True) * 10.0 ** (-_QUIET_DB / 20.0)
    voiced = has_dip & (rms > loud.clamp(min=_QUIET_FLOOR))
    f0 = torch.where(voiced & (f0 >= f0_min) & (f0 <= f0_max), f0, 0.0)
    return f0[0] if squeeze else f0


def log_energy(magnitude: Tensor, floor: float = 1e-4) -> Tensor:
    """Frame energy: log of the L2 norm of each STFT magnitude frame.

    Args:
        magnitude: (B, F, T) linear magnitudes (``MelSpectrogram.magnitude``).

    Returns:
        (B, T).
    """
    return torch.log(torch.linalg.vector_norm(magnitude, dim=1).clamp(min=floor))


def normalize_pitch(f0: Tensor, mean: float, std: float) -> Tensor:
    """Hz -> ``(log f0 - mean) / std`` on voiced frames (f0 > 0), 0 elsewhere."""
    voiced = f0 > 0
    return torch.where(voiced, (torch.log(f0.clamp(min=1.0)) - mean) / std, 0.0)


def semitones_to_normalized(semitones: float, std: float) -> float:
    """A pitch shift in semitones as an offset of normalised pitch.

    Pitch is normalised log-f0, so a shift of s semitones (f0 * 2^(s/12)) adds
    ``s * ln(2) / 12 / std`` to every value.
    """
    return semitones * math.log(2.0) / 12.0 / std


def average_per_symbol(
    values: Tensor, durations: Tensor, weights: Tensor | None = None
) -> Tensor:
    """Weighted mean of frame values over each symbol's frames.

    Args:
        values: (B, T) frame values.
        durations: (B, N) frames per symbol (integers, summing to <= T).
        weights: (B, T) frame weights (e.g. voiced = 1); None for all ones.

    Returns:
        (B, N), 0 for symbols with no frames or zero total weight.

    Example:
        >>> average_per_symbol(torch.tensor([[1., 3., 5.]]), torch.tensor([[2, 1]]))
        tensor([[2., 5.]])
    """
    if weights is None:
        weights = torch.ones_like(values)
    weights = weights.to(values.dtype)
    end = durations.long().cumsum(-1)  # (B, N)
    start = end - durations.long()
    summed = F.pad((values * weights).cumsum(-1), (1, 0))  # (B, T + 1)
    counted = F.pad(weights.cumsum(-1), (1, 0))
    total = summed.gather(-1, end) - summed.gather(-1, start)
    count = counted.gather(-1, end) - counted.gather(-1, start)
    return torch.where(count > 0, total / count.clamp(min=1e-8), 0.0)
