"""Training-only parts of the vocoder: discriminators and losses.

- ``PeriodDiscriminators``: HiFi-GAN's multi-period discriminator; the wave is
  folded into (frames, period) and 2-D convs with (k, 1) kernels look at every
  period-th sample.
- ``SpectrogramDiscriminators``: UnivNet/Vocos multi-resolution discriminator;
  2-D convs over (frequency, time) of STFT magnitudes at several resolutions.
- ``MultiResolutionMelLoss``: L1 between log-mel spectrograms at several
  (n_fft, hop, n_mels): the main reconstruction loss.
- hinge adversarial losses and feature matching.

Every discriminator returns, per sub-discriminator, its score map and its
intermediate feature maps; shapes are (B, ...) throughout, B waveforms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "MultiResolutionMelLoss",
    "PeriodDiscriminators",
    "SpectrogramDiscriminators",
    "discriminator_hinge_loss",
    "feature_matching_loss",
    "generator_hinge_loss",
]

Outputs = list[tuple[Tensor, list[Tensor]]]  # per sub-discriminator: score, features
LEAK = 0.1


class _PeriodDiscriminator(nn.Module):
    """Convs over every period-th sample. HiFi-GAN folds the wave into a
    (S / p, p) image and uses (k, 1) Conv2d kernels; the same maps come from
    Conv1d over the p interleaved sub-sequences as a batch of B * p, which is
    far faster to differentiate on a CPU."""

    def __init__(self, period: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.period = period
        widths = (1, *channels)
        last = len(channels) - 1
        self.convs = nn.ModuleList(
            weight_norm(
                nn.Conv1d(widths[i], widths[i + 1], 5, 1 if i == last else 3, 2)
            )
            for i in range(len(channels))
        )
        self.score = weight_norm(nn.Conv1d(widths[-1], 1, 3, 1, 1))

    def forward(self, wave: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, S) -> score (B, n), features (B * p, C, S')."""
        batch, samples = wave.shape
        pad = -samples % self.period
        x = F.pad(wave[:, None], (0, pad), mode="reflect")[:, 0]  # (B, S + pad)
        x = x.view(batch, -1, self.period).transpose(1, 2)  # (B, p, S / p)
        x = x.reshape(batch * self.period, 1, -1)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAK)
            features.append(x)
        x = self.score(x)
        features.append(x)
        return x.reshape(batch, -1), features


class PeriodDiscriminators(nn.Module):
    def __init__(
        self,
        periods: tuple[int, ...] = (2, 3, 5, 7, 11),
        channels: tuple[int, ...] = (32, 128, 512, 1024, 1024),
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            _PeriodDiscriminator(p, channels) for p in periods
        )

    def forward(self, wave: Tensor) -> Outputs:
        return [d(wave) for d in self.discriminators]


class _SpectrogramDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, channels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        shapes = [
            ((7, 5), (2, 2), (3, 2)),
            ((5, 3), (2, 1), (2, 1)),
            ((5, 3), (2, 2), (2, 1)),
            ((3, 3), (2, 1), (1, 1)),
            ((3, 3), (2, 2), (1, 1)),
        ]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(1 if i == 0 else channels, channels, k, s, p))
            for i, (k, s, p) in enumerate(shapes)
        )
        self.score = weight_norm(nn.Conv2d(channels, 1, (3, 3), 1, (1, 1)))

    def forward(self, wave: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, S) -> score (B, n), features."""
        with torch.autocast(wave.device.type, enabled=False):
            spec = torch.stft(
                wave.float(),
                self.n_fft,
                self.hop,
                window=self.window,
                center=True,
                return_complex=True,
            ).abs()  # (B, F, frames)
        x = spec[:, None]
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAK)
            features.append(x)
        x = self.score(x)
        features.append(x)
        return x.flatten(1), features


class SpectrogramDiscriminators(nn.Module):
    def __init__(
        self,
        resolutions: tuple[tuple[int, int], ...] = (
            (512, 128),
            (1024, 256),
            (2048, 512),
        ),
        channels: int = 32,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            _SpectrogramDiscriminator(n_fft, hop, channels)
            for n_fft, hop in resolutions
        )

    def forward(self, wave: Tensor) -> Outputs:
        return [d(wave) for d in self.discriminators]


class MultiResolutionMelLoss(nn.Module):
    """Mean over resolutions of the L1 distance of natural-log mel magnitudes
    (clamped at ``floor``); computed in float32."""

    def __init__(
        self,
        sample_rate: int,
        resolutions: tuple[tuple[int, int, int], ...] = (
            (512, 128, 40),
            (1024, 256, 80),
            (2048, 512, 128),
        ),
        f_max: float | None = None,
        floor: float = 1e-5,
    ) -> None:
        super().__init__()
        self.resolutions = resolutions
        self.floor = floor
        for i, (n_fft, _, n_mels) in enumerate(resolutions):
            banks = AF.melscale_fbanks(
                n_fft // 2 + 1,
                0.0,
                f_max or sample_rate / 2,
                n_mels,
                sample_rate,
                norm="slaney",
                mel_scale="slaney",
            )
            self.register_buffer(f"banks{i}", banks.T.contiguous(), persistent=False)
            self.register_buffer(
                f"window{i}", torch.hann_window(n_fft), persistent=False
            )

    def log_mel(self, wave: Tensor, index: int) -> Tensor:
        n_fft, hop, _ = self.resolutions[index]
        spec = torch.stft(
            wave.float(),
            n_fft,
            hop,
            window=getattr(self, f"window{index}"),
            center=True,
            return_complex=True,
        ).abs()
        return torch.log(
            torch.clamp(getattr(self, f"banks{index}") @ spec, min=self.floor)
        )

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        with torch.autocast(prediction.device.type, enabled=False):
            losses = [
                F.l1_loss(self.log_mel(prediction, i), self.log_mel(target, i))
                for i in range(len(self.resolutions))
            ]
        return torch.stack(losses).mean()


def discriminator_hinge_loss(real: Outputs, fake: Outputs) -> Tensor:
    """Mean over sub-discriminators of relu(1 - D(real)) + relu(1 + D(fake))."""
    losses = [
        F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
        for (r, _), (f, _) in zip(real, fake, strict=True)
    ]
    return torch.stack(losses).mean()


def generator_hinge_loss(fake: Outputs) -> Tensor:
    return torch.stack([F.relu(1 - f.float()).mean() for f, _ in fake]).mean()


def feature_matching_loss(real: Outputs, fake: Outputs) -> Tensor:
    """Mean over sub-discriminators of the summed L1 distances of their
    feature maps (real features are constants)."""
    losses = []
    for (_, real_features), (_, fake_features) in zip(real, fake, strict=True):
        pairs = zip(real_features, fake_features, strict=True)
        losses.append(sum(F.l1_loss(f.float(), r.detach().float()) for r, f in pairs))
    return torch.stack(losses).mean()
