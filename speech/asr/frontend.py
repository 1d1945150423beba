"""The recogniser's front end: Kaldi-compatible log-mel filterbank features.

The features are those of WeNet and ChunkFormer: ``torchaudio.compliance.kaldi
.fbank`` on samples scaled to the int16 range, 80 mel bins, 25 ms frames every
10 ms, povey window, preemphasis 0.97, DC offset removed, no dither, no energy
term, ``snip_edges`` (frames lie wholly inside the signal).

Three implementations of one definition:

- ``fbank_torch``: torchaudio's, the reference (torch is imported lazily, so
  this module can be imported without torch);
- ``fbank_numpy``: an independent numpy twin in float64 for the ONNX Runtime
  path. It equals torchaudio computing in float64 to 5e-4 (torchaudio builds
  its mel filters in float32), and torchaudio in float32 to 5e-4 wherever the
  bin is within ~70 dB of the frame's loudest; below that, on pure tones,
  torchaudio's own float32 rounding noise shows (it differs from itself in
  float64 by up to ~2 nats there). Real recordings have a noise floor far
  above that, so the difference does not reach the model;
- ``StreamingFbank``: ``fbank_numpy`` fed with pieces of any size; its output
  is bit-identical to ``fbank_numpy`` of the whole signal.

Letters: T samples, F frames, M mel bins, K = fft_size // 2 + 1 FFT bins.
Frame ``i`` covers samples ``[shift * i, shift * i + length)``; see
``num_frames``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "FbankConfig",
    "StreamingFbank",
    "VTLN_RANGE",
    "fbank_batch",
    "fbank_numpy",
    "fbank_torch",
    "mel_banks",
    "num_frames",
    "warp_matrix",
    "warp_spectrum",
]

_LOG_FLOOR = float(np.finfo(np.float32).eps)  # torchaudio floors mel energies here
VTLN_RANGE = (0.5, 2.0)  # the warp factors FbankConfig.vtln_warp takes
_FRAMES_PER_BATCH = 4096  # bounds fbank_numpy's working memory (~16 MiB)


@dataclass(frozen=True)
class FbankConfig:
    """Filterbank settings; the defaults are the ChunkFormer/WeNet ones.

    ``input_scale`` multiplies float samples in [-1, 1] before the analysis
    (32768: Kaldi and WeNet models are trained on int16-valued samples).
    ``high_freq <= 0`` is an offset from the Nyquist frequency, as in Kaldi.
    ``dither`` is honoured by ``fbank_torch`` only (training augmentation).
    ``vtln_warp``: vocal tract length normalisation, the frequency warp of
    ``warp_spectrum`` (the one VTLP draws in training) folded into the mel
    filters, so warped features cost nothing extra; 1 leaves them as they
    are. ``fbank_torch``, the torchaudio reference, takes only 1.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    preemphasis: float = 0.97
    remove_dc_offset: bool = True
    window_type: Literal["povey", "hanning", "hamming"] = "povey"
    low_freq: float = 20.0
    high_freq: float = 0.0
    dither: float = 0.0
    input_scale: float = 32768.0
    vtln_warp: float = 1.0

    def __post_init__(self) -> None:
        low, high = VTLN_RANGE
        if not low <= self.vtln_warp <= high:
            raise ValueError(
                f"vtln_warp must be within {low:g}..{high:g}, got {self.vtln_warp}"
            )

    @property
    def frame_length(self) -> int:
        """Samples per frame (400 at 16 kHz)."""
        return int(self.sample_rate * self.frame_length_ms * 0.001)

    @property
    def frame_shift(self) -> int:
        """Samples between frame starts (160 at 16 kHz)."""
        return int(self.sample_rate * self.frame_shift_ms * 0.001)

    @property
    def fft_size(self) -> int:
        """The frame zero-padded to a power of two (512 at 16 kHz)."""
        return 1 << (self.frame_length - 1).bit_length()


def num_frames(num_samples: int, cfg: FbankConfig = FbankConfig()) -> int:
    """Frames in a signal of ``num_samples`` (snip_edges: whole frames only).

    Example (16 kHz, 400-sample frames every 160 samples):
        >>> [num_frames(n) for n in (0, 399, 400, 559, 560, 16000)]
        [0, 0, 1, 1, 2, 98]
    """
    if num_samples < cfg.frame_length:
        return 0
    return 1 + (num_samples - cfg.frame_length) // cfg.frame_shift


# ----------------------------------------------------------------- torchaudio


def fbank_torch(waveform: Tensor, cfg: FbankConfig = FbankConfig()) -> Tensor:
    """(T,) float samples in [-1, 1] -> (F, M) float32 log-mel features.

    The reference implementation, ``torchaudio.compliance.kaldi.fbank``.
    """
    import torch
    import torchaudio.compliance.kaldi as kaldi

    if waveform.dim() != 1:
        raise ValueError(f"expected a (T,) waveform, got {tuple(waveform.shape)}")
    if cfg.vtln_warp != 1.0:
        raise ValueError("fbank_torch has no vtln_warp; use fbank_numpy or fbank_batch")
    if num_frames(waveform.shape[0], cfg) == 0:
        return torch.zeros(0, cfg.num_mel_bins, dtype=torch.float32)
    samples = waveform.to(torch.float32).unsqueeze(0) * cfg.input_scale  # (1, T)
    return kaldi.fbank(
        samples,
        num_mel_bins=cfg.num_mel_bins,
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        dither=cfg.dither,
        energy_floor=0.0,
        use_energy=False,
        preemphasis_coefficient=cfg.preemphasis,
        remove_dc_offset=cfg.remove_dc_offset,
        window_type=cfg.window_type,
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        sample_frequency=cfg.sample_rate,
        snip_edges=True,
        round_to_power_of_two=True,
    )


# ----------------------------------------------------------------- numpy twin


def _mel(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


def mel_banks(cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """(M, K) triangular Kaldi mel filters over the FFT bins (last column zero).

    Triangles are equally spaced on the mel scale ``1127 ln(1 + f / 700)``
    between ``low_freq`` and ``high_freq``, each spanning two spacings, and are
    evaluated at FFT bin centres, like Kaldi's ``MelBanks``. With
    ``cfg.vtln_warp`` they are followed by ``warp_spectrum``'s warp: the
    filters read the warped spectrum (``banks @ warp_matrix``).
    """
    banks = _mel_banks(cfg.num_mel_bins, cfg.fft_size, cfg.sample_rate,
                       cfg.low_freq, cfg.high_freq)  # fmt: skip
    if cfg.vtln_warp != 1.0:
        return banks @ warp_matrix(banks.shape[1], cfg.vtln_warp)
    return banks.copy()


@lru_cache(maxsize=32)
def warp_matrix(bins: int, factor: float, boundary: float = 0.8) -> np.ndarray:
    """(K, K) linear map of ``warp_spectrum``: ``warped = W @ power`` for one
    frame's K power bins (numpy, float64). Output bin ``k`` reads input bin
    ``k / factor`` below a cut-off, then a line that keeps Nyquist in place;
    values between bins are interpolated linearly."""
    top = float(bins - 1)
    cut_out = boundary * top * min(factor, 1.0)
    cut_in = cut_out / factor
    out = np.arange(bins, dtype=np.float64)
    source = np.where(
        out <= cut_out,
        out / factor,
        cut_in + (out - cut_out) * (top - cut_in) / (top - cut_out),
    ).clip(0.0, top)
    low = np.minimum(np.floor(source).astype(np.int64), bins - 2)
    frac = source - low
    matrix = np.zeros((bins, bins))
    np.add.at(matrix, (out.astype(np.int64), low), 1.0 - frac)
    np.add.at(matrix, (out.astype(np.int64), low + 1), frac)
    matrix.setflags(write=False)
    return matrix


@lru_cache(maxsize=8)
def _mel_banks(
    num_bins: int, fft_size: int, sample_rate: int, low_freq: float, high_freq: float
) -> np.ndarray:
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < high_freq <= nyquist):
        raise ValueError(f"bad mel range [{low_freq}, {high_freq}] for {sample_rate=}")
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + delta * np.arange(num_bins + 2)  # left/centre/right of each
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fft_mels = _mel(sample_rate / fft_size * np.arange(fft_size // 2))[None, :]
    up = (fft_mels - left) / (centre - left)
    down = (right - fft_mels) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))  # (M, K - 1)
    return np.pad(banks, ((0, 0), (0, 1)))  # the Nyquist bin gets no weight


@lru_cache(maxsize=8)
def _window(kind: str, length: int) -> np.ndarray:
    n = np.arange(length, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / (length - 1))
    if kind == "povey":
        return hann**0.85
    if kind == "hanning":
        return hann
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(2.0 * math.pi * n / (length - 1))
    raise ValueError(f"unknown window type {kind!r}")


@lru_cache(maxsize=16)  # a recognizer with vtln="auto" uses seven
def _sparse_banks(cfg: FbankConfig) -> tuple[tuple[int, int, np.ndarray], ...]:
    """Each filter as (first bin, end bin, weights) over its non-zero bins."""
    filters = []
    for row in mel_banks(cfg):
        nonzero = np.flatnonzero(row)
        first, end = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)
        filters.append((first, end, np.ascontiguousarray(row[first:end])))
    return tuple(filters)


def _fbank_frames(frames: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    """(F, frame_length) raw samples -> (F, M) float32 log-mel features.

    Every operation is row-wise with a fixed order of summation, so a frame's
    features do not depend on which other frames share the call; this is what
    makes ``StreamingFbank`` bit-identical to ``fbank_numpy``.
    """
    x = frames.astype(np.float64) * cfg.input_scale  # (F, L)
    if cfg.remove_dc_offset:
        x -= x.mean(axis=1, keepdims=True)
    if cfg.preemphasis != 0.0:
        # x[j] -= p * x[j - 1], with x[-1] = x[0] (Kaldi's replicate padding)
        previous = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
        x = x - cfg.preemphasis * previous
    x *= _window(cfg.window_type, cfg.frame_length)
    spectrum = np.fft.rfft(x, n=cfg.fft_size, axis=1)  # (F, K)
    power = spectrum.real**2 + spectrum.imag**2
    mel = np.empty((len(frames), cfg.num_mel_bins), dtype=np.float64)
    for index, (first, end, weights) in enumerate(_sparse_banks(cfg)):
        mel[:, index] = (power[:, first:end] * weights).sum(axis=1)
    return np.log(np.maximum(mel, _LOG_FLOOR)).astype(np.float32)


def fbank_numpy(samples: np.ndarray, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """(T,) float samples in [-1, 1] -> (F, M) float32 log-mel features.

    Matches ``fbank_torch`` to 5e-4 on real audio (see the module docstring).
    Works through the frames in batches, so memory stays small for long input.
    """
    if cfg.dither != 0.0:
        raise ValueError("fbank_numpy computes undithered features; set dither=0")
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected (T,) samples, got shape {samples.shape}")
    count = num_frames(len(samples), cfg)
    if count == 0:
        return np.zeros((0, cfg.num_mel_bins), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(samples, cfg.frame_length)
    windows = windows[:: cfg.frame_shift][:count]  # (F, L), a view
    return np.concatenate(
        [
            _fbank_frames(windows[start : start + _FRAMES_PER_BATCH], cfg)
            for start in range(0, count, _FRAMES_PER_BATCH)
        ]
    )


class StreamingFbank:
    """``fbank_numpy`` for audio that arrives in pieces.

    ``accept`` takes float32 samples of any length and returns the frames that
    became complete, (F_new, M), possibly none. The concatenation of all the
    outputs equals ``fbank_numpy`` of the concatenated input exactly. Only the
    samples not yet consumed by a whole frame are kept (fewer than
    ``frame_length``), so memory is bounded.

    Example:
        >>> stream = StreamingFbank()
        >>> [len(stream.accept(np.zeros(n, np.float32))) for n in (300, 300, 10)]
        [0, 2, 0]
        >>> stream.num_frames
        2
    """

    def __init__(self, cfg: FbankConfig = FbankConfig()) -> None:
        if cfg.dither != 0.0:
            raise ValueError("StreamingFbank computes undithered features; dither=0")
        self.cfg = cfg
        self._pending = np.zeros(0, dtype=np.float32)
        self.num_frames = 0  # frames returned so far
        self.num_samples = 0  # samples accepted so far

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Add (T,) samples; return the (F_new, M) newly completed frames."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.num_samples += len(samples)
        buffer = (
            np.concatenate([self._pending, samples]) if len(self._pending) else samples
        )
        features = fbank_numpy(buffer, self.cfg)
        consumed = len(features) * self.cfg.frame_shift
        self._pending = buffer[consumed:].copy()
        self.num_frames += len(features)
        return features

    def reset(self) -> None:
        """Forget all input, as if newly made."""
        self._pending = np.zeros(0, dtype=np.float32)
        self.num_frames = 0
        self.num_samples = 0


def warp_spectrum(power: Tensor, factors: Tensor, boundary: float = 0.8) -> Tensor:
    """Vocal tract length perturbation (Jaitly and Hinton, 2013) of power
    spectra (B, F, K): row ``b``'s frequency axis is scaled by ``factors[b]``
    up to a cut-off, and mapped linearly from there so Nyquist stays put (the
    piecewise-linear warp Kaldi uses). A factor above 1 moves formants up, as
    from a shorter vocal tract. Values between FFT bins are interpolated
    linearly; factor 1 returns the row unchanged."""
    import torch

    bins = power.shape[-1]
    top = float(bins - 1)
    alpha = factors.to(power.dtype).reshape(-1, 1)  # (B, 1)
    # The cut-off, in output bins, lies below boundary * top for every factor.
    cut_out = boundary * top * torch.clamp(alpha, max=1.0)
    cut_in = cut_out / alpha
    out = torch.arange(bins, device=power.device, dtype=power.dtype)[None, :]
    source = torch.where(
        out <= cut_out,
        out / alpha,
        cut_in + (out - cut_out) * (top - cut_in) / (top - cut_out),
    ).clamp(0.0, top)  # (B, K): input bin read by each output bin
    low = source.floor().long().clamp(max=bins - 2)
    frac = source - low
    index = low[:, None, :].expand(-1, power.shape[1], -1)
    below = torch.gather(power, 2, index)
    above = torch.gather(power, 2, index + 1)
    return below + (above - below) * frac[:, None, :]


def fbank_batch(
    waveforms: Tensor,
    lengths: Tensor,
    cfg: FbankConfig = FbankConfig(),
    warp: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Batched log-mel features on any device (used for training on a GPU).

    Args:
        waveforms: (B, S) float samples in [-1, 1], zero-padded.
        lengths: (B,) valid samples per row.
        warp: optional (B,) vocal tract length perturbation factors
            (``warp_spectrum``); 1 leaves a row unchanged.

    Returns:
        (B, F, M) features (rows past each length are padding) and (B,)
        frame counts; equal to ``fbank_torch`` row by row to float32
        rounding (no dither).
    """
    import torch

    frame, shift = cfg.frame_length, cfg.frame_shift
    if waveforms.shape[1] < frame:
        waveforms = torch.nn.functional.pad(waveforms, (0, frame - waveforms.shape[1]))
    x = waveforms.float() * cfg.input_scale
    frames = x.unfold(1, frame, shift)  # (B, F, frame)
    if cfg.remove_dc_offset:
        frames = frames - frames.mean(-1, keepdim=True)
    if cfg.preemphasis:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - cfg.preemphasis * previous
    window = torch.as_tensor(
        _window(cfg.window_type, frame), dtype=frames.dtype, device=x.device
    )
    spectrum = torch.fft.rfft(frames * window, n=cfg.fft_size)  # (B, F, K)
    power = spectrum.real.square() + spectrum.imag.square()
    if warp is not None:
        power = warp_spectrum(power, warp)
    banks = torch.as_tensor(
        mel_banks(cfg), dtype=power.dtype, device=x.device
    )  # (M, K)
    mel = torch.matmul(power, banks.T)
    features = torch.log(torch.clamp(mel, min=_LOG_FLOOR))
    counts = torch.where(
        lengths >= frame, (lengths - frame) // shift + 1, torch.zeros_like(lengths)
    )
    return features, counts
