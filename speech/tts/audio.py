"""Mel spectrogram of the synthesizer: one definition for FastPitch targets,
vocoder inputs and training losses.

Frame t is centred on sample ``t * hop_length`` (the signal is reflect-padded
by ``n_fft // 2`` on both sides), so a waveform of S samples gives
``S // hop_length + 1`` frames and frame t stands for the samples
``[t * hop, (t + 1) * hop)`` once the vocoder drops its first half window.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF
from torch import Tensor, nn

__all__ = ["MelConfig", "MelSpectrogram"]


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class MelSpectrogram(nn.Module):
    """Waveform (B, S) -> log-mel (B, n_mels, S // hop + 1), natural log of the
    magnitude mel spectrum clamped at ``log_floor``."""

    def __init__(self, config: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer(
            "window", torch.hann_window(config.win_length), persistent=False
        )
        banks = AF.melscale_fbanks(
            n_freqs=config.n_fft // 2 + 1,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            sample_rate=config.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )  # (F, n_mels)
        self.register_buffer("banks", banks.T.contiguous(), persistent=False)

    def magnitude(self, waveform: Tensor) -> Tensor:
        """(B, S) -> linear magnitude spectrum (B, n_fft // 2 + 1, frames)."""
        cfg = self.config
        spec = torch.stft(
            waveform.float(),
            cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.abs()

    def forward(self, waveform: Tensor) -> Tensor:
        mel = torch.matmul(self.banks, self.magnitude(waveform))
        return torch.log(torch.clamp(mel, min=self.config.log_floor))
