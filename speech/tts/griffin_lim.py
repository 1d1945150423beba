"""Griffin-Lim fallback vocoder: log-mel -> waveform with no trained weights.

The mel filterbank is inverted to a non-negative linear magnitude spectrum
(pseudo-inverse, then non-negative least-squares refinement by multiplicative
updates), and a phase is found by fast Griffin-Lim (Perraudin et al. 2013:
Griffin-Lim with momentum). The output follows the vocoder's convention: a
mel of T frames gives T * hop samples on the source timeline.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from speech.tts.audio import MelConfig, MelSpectrogram

__all__ = ["griffin_lim", "mel_to_magnitude"]


@lru_cache(maxsize=4)
def _filterbank(config: MelConfig) -> tuple[Tensor, Tensor]:
    """(M, F) mel filterbank and its (F, M) pseudo-inverse."""
    banks = MelSpectrogram(config).banks.double()  # (M, F)
    return banks.float(), torch.linalg.pinv(banks).float()


def mel_to_magnitude(
    log_mel: Tensor, config: MelConfig | None = None, n_iter: int = 30
) -> Tensor:
    """Log-mel (M, T) -> non-negative linear magnitude (F, T) whose mel
    projection approximates ``exp(log_mel)`` in the least-squares sense."""
    config = config or MelConfig()
    banks, inverse = _filterbank(config)
    target = log_mel.exp()  # (M, T)
    floor = config.log_floor
    magnitude = (inverse @ target).clamp(min=floor)  # (F, T)
    # Lee-Seung multiplicative updates keep the magnitude non-negative and
    # decrease || banks @ magnitude - target ||^2 at every step.
    numerator = banks.T @ target  # (F, T)
    gram = banks.T @ banks  # (F, F)
    for _ in range(n_iter):
        magnitude = magnitude * numerator / (gram @ magnitude + 1e-12)
    return magnitude


def griffin_lim(
    log_mel: Tensor | np.ndarray,
    config: MelConfig | None = None,
    n_iter: int = 32,
    momentum: float = 0.99,
    seed: int = 0,
) -> np.ndarray:
    """Log-mel (M, T) -> float32 waveform (T * hop,).

    Args:
        log_mel: natural-log magnitude mel as made by ``MelSpectrogram``.
        config: the mel definition it was made with.
        n_iter: Griffin-Lim iterations (32 take ~0.1 s for 5 s of audio).
        momentum: fast Griffin-Lim momentum (0 gives plain Griffin-Lim).
        seed: seed of the random initial phase (the output is deterministic).
    """
    config = config or MelConfig()
    mel = torch.as_tensor(log_mel, dtype=torch.float32).cpu()
    if mel.dim() != 2 or mel.shape[0] != config.n_mels:
        raise ValueError(
            f"expected log-mel ({config.n_mels}, T), got {tuple(mel.shape)}"
        )
    frames = mel.shape[1]
    length = frames * config.hop_length
    magnitude = mel_to_magnitude(mel, config)  # (F, T)
    window = torch.hann_window(config.win_length)
    stft_args = dict(
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
    )

    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=generator) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(magnitude), phase)  # (F, T) unit complex
    previous = torch.zeros_like(angles)
    with torch.inference_mode():
        for _ in range(n_iter):
            wave = torch.istft(magnitude * angles, length=length, **stft_args)
            rebuilt = torch.stft(
                wave, pad_mode="reflect", return_complex=True, **stft_args
            )
            rebuilt = rebuilt[:, :frames]  # T * hop samples give T + 1 frames
            angles = rebuilt - (momentum / (1 + momentum)) * previous
            angles = angles / angles.abs().clamp(min=1e-16)
            previous = rebuilt
        wave = torch.istft(magnitude * angles, length=length, **stft_args)
    return wave.numpy().astype(np.float32)
