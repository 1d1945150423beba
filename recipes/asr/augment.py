"""Training-time augmentation: resynthesis through a parametric vocoder,
speed perturbation, additive noise, simulated reverberation (waveform,
numpy), vocal tract length perturbation and SpecAugment (features, torch).

No noise or impulse-response corpus can be downloaded here, so noises are
synthesised (white, pink, brown, hum, babble from other training utterances)
and rooms are simulated (exponentially decaying noise tails with early
reflections, RT60 drawn per utterance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF
from scipy.ndimage import median_filter
from torch import Tensor

__all__ = [
    "AugmentConfig",
    "apply_eq",
    "augment_waveform",
    "random_eq",
    "revoice",
    "shift_fricatives",
    "spec_augment",
    "vtlp_factors",
]


@dataclass(frozen=True)
class AugmentConfig:
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    reverb_prob: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.8)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    freq_masks: int = 2
    freq_width: int = 12
    time_masks: int = 4
    time_width_ratio: float = 0.04
    vtlp_prob: float = 0.8
    vtlp_range: tuple[float, float] = (0.88, 1.12)
    eq_prob: float = 0.5
    eq_db: float = 8.0  # largest boost or cut of one band
    eq_knots: int = 6  # log-spaced 100 Hz .. Nyquist; more make finer shapes
    # silence before and after the speech, drawn per side: corpora trimmed to
    # 50 ms taught the model no margin at the edges, and the last word lost
    # most (docs/asr_model_history.md, "Edges")
    edge_silence_prob: float = 0.5
    edge_silence_seconds: tuple[float, float] = (0.05, 0.6)
    # the utterance spoken again through a parametric vocoder (``revoice``):
    # a voice quality no engine of the corpus has (off by default)
    revoice_prob: float = 0.0
    # the noise of fricatives moved along frequency, voiced frames left
    # alone (``shift_fricatives``): where a voice puts its /s/ against its
    # /sh/ (off by default)
    fricative_shift_prob: float = 0.0
    fricative_shift_range: tuple[float, float] = (0.7, 1.25)


def fft_size(n: int) -> int:
    """The smallest length >= ``n`` whose only prime factors are 2, 3 and 5:
    FFTs of such lengths are fast, while a length with a large prime factor
    takes several times longer (and a power of two pads up to twice)."""
    best = 1 << max(0, int(n - 1).bit_length())
    five = 1
    while five < best:
        three = five
        while three < best:
            size = three
            while size < n:
                size *= 2
            best = min(best, size)
            three *= 3
        five *= 5
    return best


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    size = fft_size(n)
    spectrum = np.fft.rfft(rng.standard_normal(size, dtype=np.float32))
    freqs = np.maximum(np.fft.rfftfreq(size), 1.0 / size).astype(np.float32)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), size)[:n]
    return noise.astype(np.float32)


def _hum(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    base = int(rng.choice([50, 60]))
    # mains hum repeats every sample_rate / gcd(sample_rate, base) samples:
    # one period is drawn and tiled
    period = sample_rate // np.gcd(sample_rate, base)
    t = np.arange(period) / sample_rate
    cycle = sum(
        rng.uniform(0.2, 1.0)
        / k
        * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3))
        for k in range(1, 6)
    )
    return np.resize(cycle.astype(np.float32), n)


def _room_response(
    rng: np.random.Generator, sample_rate: int, rt60: float
) -> np.ndarray:
    length = int(sample_rate * rt60)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    response = np.zeros(length, dtype=np.float64)
    response[0] = 1.0
    for _ in range(rng.integers(3, 8)):
        delay = int(rng.uniform(0.002, 0.03) * sample_rate)
        if delay < length:
            response[delay] += rng.uniform(-0.6, 0.6)
    onset = int(0.005 * sample_rate)
    response[onset:] += 0.3 * tail[: length - onset]
    return (response / np.sqrt(np.sum(response**2))).astype(np.float32)


def random_eq(
    samples: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int,
    max_db: float,
    knots: int = 6,
) -> np.ndarray:
    """Colour the spectrum the way a microphone, a codec or a voice does:
    gains of up to +-``max_db`` drawn at ``knots`` log-spaced frequencies
    (100 Hz .. Nyquist), joined smoothly in log frequency, plus a random
    tilt. It keeps the signal's length and phase."""
    if len(samples) < 2:
        return samples
    points = np.geomspace(100.0, sample_rate / 2, knots)
    gains_db = rng.uniform(-max_db, max_db, len(points))
    tilt_db = rng.uniform(-max_db, max_db) * np.log2(points / 1000.0) / 4
    return apply_eq(samples, sample_rate, points, gains_db + tilt_db)


def apply_eq(
    samples: np.ndarray,
    sample_rate: int,
    points_hz: np.ndarray,
    gains_db: np.ndarray,
) -> np.ndarray:
    """Filter ``samples`` by gains (dB) given at ascending frequencies,
    joined linearly in log frequency (held flat outside them), as one
    zero-phase FFT filter; same length."""
    n = len(samples)
    if n < 2:
        return samples
    # padded by 1/16 s so that the filter's short response does not wrap
    size = fft_size(n + sample_rate // 16)
    spectrum = np.fft.rfft(samples.astype(np.float32, copy=False), size)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    curve_db = np.interp(
        np.log(np.maximum(freqs, 1.0)),
        np.log(np.maximum(np.asarray(points_hz, dtype=np.float64), 1.0)),
        gains_db,
    )
    gains = (10 ** (curve_db / 20)).astype(np.float32)
    shaped = np.fft.irfft(spectrum * gains, size)[:n]
    return shaped.astype(np.float32)


def _stft(
    samples: np.ndarray, n_fft: int, hop: int, win: int | None = None
) -> np.ndarray:
    """Centred STFT with a periodic Hann window of ``win`` (default ``n_fft``)
    samples, frequency x frame (torch's; librosa is not on the GPU machine)."""
    win = win or n_fft
    spec = torch.stft(
        torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
        n_fft,
        hop,
        win,
        torch.hann_window(win),
        return_complex=True,
    )
    return spec.numpy()


def _istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    out = torch.istft(
        torch.from_numpy(spec.astype(np.complex64)),
        n_fft,
        hop,
        n_fft,
        torch.hann_window(n_fft),
        length=length,
    )
    return out.numpy()


def _frames(sample_rate: int) -> tuple[int, int]:
    """The STFT that ``revoice`` and ``shift_fricatives`` work on: a power of
    two of at least 32 ms, every 10 ms."""
    return 1 << int(np.ceil(np.log2(0.032 * sample_rate))), max(1, sample_rate // 100)


def _frame_f0(
    samples: np.ndarray, sample_rate: int, n_fft: int, hop: int
) -> np.ndarray:
    """F0 (Hz) of each frame (``n_fft`` samples, Hann window, every ``hop``),
    0 where unvoiced: the autocorrelation (inverse FFT of the power, zero-
    padded so that it does not wrap), divided by the window's own so that
    long lags are not penalised, peaks at the period."""
    size = 2 * n_fft
    power = np.abs(_stft(samples, size, hop, n_fft)) ** 2
    window = np.hanning(n_fft + 1)[:n_fft]
    bias = np.fft.irfft(np.abs(np.fft.rfft(window, size)) ** 2, size)
    acf = np.fft.irfft(power, size, axis=0)
    low, high = int(sample_rate / 400), min(int(sample_rate / 60), n_fft // 2)
    scaled = acf[low:high] / bias[low:high, None]
    scaled *= bias[0] / np.maximum(acf[0], 1e-12)[None, :]
    # every multiple of the period peaks as high as the period itself: the
    # shortest lag at a local peak within 10 % of the highest is the period
    peak = np.zeros_like(scaled, dtype=bool)
    peak[1:-1] = (scaled[1:-1] >= scaled[:-2]) & (scaled[1:-1] >= scaled[2:])
    near = peak & (scaled >= 0.9 * scaled.max(axis=0, keepdims=True))
    index = np.where(
        near.any(axis=0), np.argmax(near, axis=0), np.argmax(scaled, axis=0)
    )
    lag = low + index
    strength = scaled[index, np.arange(acf.shape[1])]
    energy = acf[0]
    voiced = (strength > 0.45) & (energy > 1e-3 * np.max(energy, initial=1e-12))
    f0 = np.where(voiced, sample_rate / lag, 0.0)
    # octave jumps and stray frames: a median over five frames
    return np.where(voiced, median_filter(f0, size=5, mode="nearest"), 0.0)


def revoice(
    samples: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int,
    pitch: float | None = None,
    smoothing_ms: float | None = None,
    breath: float | None = None,
    warp: float | None = None,
) -> np.ndarray:
    """Speak the utterance again through a simple parametric vocoder, the
    way statistical and diphone engines make their voices, as another
    speaker: the spectral envelope of each 10 ms frame (cepstrally smoothed
    over ``smoothing_ms`` of quefrency, 1.0-2.2 ms when drawn), stretched
    along frequency by ``warp`` (0.87-1.15 when drawn; above 1 a shorter
    vocal tract), excited by a new source: a pulse train at the utterance's
    own F0 times ``pitch`` (0.7-1.45 when drawn, log-uniform) with
    ``breath`` noise (0-0.3 of it when drawn) where voiced, and noise
    elsewhere. The words and their timing stay; the voice and its quality
    are new. Same length and level."""
    samples = np.asarray(samples, dtype=np.float32)
    n = len(samples)
    n_fft, hop = _frames(sample_rate)
    level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if n else 0.0
    if n < n_fft or level < 1e-6:
        return samples
    if pitch is None:
        pitch = float(np.exp(rng.uniform(np.log(0.7), np.log(1.45))))
    if smoothing_ms is None:
        smoothing_ms = float(rng.uniform(1.0, 2.2))
    if breath is None:
        breath = float(rng.uniform(0.0, 0.3))
    if warp is None:
        warp = float(rng.uniform(0.87, 1.15))
    spec = _stft(samples, n_fft, hop)
    power = np.abs(spec) ** 2
    f0 = _frame_f0(samples, sample_rate, n_fft, hop) * pitch
    # envelope: the log magnitude with its fine (harmonic) structure liftered off
    cepstrum = np.fft.irfft(np.log(np.abs(spec) + 1e-5), n_fft, axis=0)
    cut = max(2, int(smoothing_ms * 1e-3 * sample_rate))
    cepstrum[cut : n_fft - cut + 1] = 0.0
    log_envelope = np.fft.rfft(cepstrum, axis=0).real
    if warp != 1.0:
        log_envelope = _warp_bins(log_envelope, warp)
    envelope = np.exp(log_envelope)
    # the source, sample by sample: a pulse at each period where voiced
    centres = np.arange(f0.shape[0]) * hop
    voiced = np.interp(np.arange(n), centres, (f0 > 0).astype(np.float64)) > 0.5
    hz = np.interp(np.arange(n), centres[f0 > 0], f0[f0 > 0]) if np.any(f0 > 0) else 0
    cycles = np.cumsum(np.where(voiced, hz, 0.0) / sample_rate)
    pulses = np.diff(np.floor(cycles), prepend=0.0) > 0
    period = sample_rate / np.maximum(hz, 1.0)
    noise = rng.standard_normal(n)
    source = np.where(voiced, pulses * np.sqrt(period) + breath * noise, noise).astype(
        np.float32
    )
    excitation = _stft(source, n_fft, hop)
    frames = min(excitation.shape[1], envelope.shape[1])
    flat = excitation[:, :frames] / np.sqrt(
        np.mean(np.abs(excitation[:, :frames]) ** 2, axis=0, keepdims=True) + 1e-12
    )
    out = flat * envelope[:, :frames]
    # each frame keeps its own energy (the envelope is a geometric mean,
    # which sits lower under harmonics than under noise)
    gain = np.sqrt(
        power[:, :frames].sum(axis=0)
        / np.maximum((np.abs(out) ** 2).sum(axis=0), 1e-12)
    )
    out = _istft(out * gain, n_fft, hop, n)
    out_level = float(np.sqrt(np.mean(out.astype(np.float64) ** 2)))
    return (out * (level / max(out_level, 1e-12))).astype(np.float32)


def _warp_bins(
    values: np.ndarray, factor: float, beyond: float | None = None
) -> np.ndarray:
    """Frequency x frame ``values`` stretched along frequency by ``factor``:
    the bin at f takes the value at f / factor (linear interpolation). Past
    Nyquist the value is ``beyond``, or by default the top bin's."""
    bins = values.shape[0]
    wanted = np.arange(bins) / factor
    source = np.minimum(wanted, bins - 1)
    below = np.floor(source).astype(int)
    above = np.minimum(below + 1, bins - 1)
    frac = (source - below)[:, None]
    out = (1 - frac) * values[below] + frac * values[above]
    if beyond is not None:
        out[wanted > bins - 1] = beyond
    return out


def shift_fricatives(
    samples: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int,
    factor: float | None = None,
    factor_range: tuple[float, float] = (0.7, 1.25),
) -> np.ndarray:
    """Move the noise of the utterance's fricatives along frequency by
    ``factor`` (drawn from ``factor_range`` when not given; below 1 lower),
    leaving voiced frames as they are. Voices differ in where they put /s/
    (flite's ``rms`` peaks at 3.5 kHz, espeak-ng's men at 4.9 kHz, flite's
    ``slt`` at 6.9 kHz) much more than a vocal tract warp moves it, and what
    tells /s/ from /sh/ is where each lies against the other in one voice.
    A frame counts as fricative by how far its power above 2 kHz exceeds
    its power below 1 kHz (fully from 4x), if it is unvoiced; each frame
    keeps its energy and phase. Same length."""
    samples = np.asarray(samples, dtype=np.float32)
    n = len(samples)
    n_fft, hop = _frames(sample_rate)
    if n < n_fft or not np.any(samples):
        return samples
    if factor is None:
        factor = float(rng.uniform(*factor_range))
    spec = _stft(samples, n_fft, hop)
    magnitude = np.abs(spec)
    power = magnitude**2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    high = power[freqs >= 2000].sum(axis=0)
    low = power[freqs < 1000].sum(axis=0) + 1e-12
    frames = spec.shape[1]
    voiced = _frame_f0(samples, sample_rate, n_fft, hop)[:frames] > 0
    weight = np.clip(np.log(high / low + 1e-12) / np.log(4.0), 0.0, 1.0)
    weight = np.where(voiced, 0.0, weight)
    if not np.any(weight > 0):
        return samples
    moved = _warp_bins(magnitude, factor, beyond=0.0)  # nothing above Nyquist
    moved *= np.sqrt(power.sum(axis=0) / np.maximum((moved**2).sum(axis=0), 1e-12))
    new_magnitude = (1 - weight) * magnitude + weight * moved
    phase = np.exp(1j * np.angle(spec))
    return _istft(new_magnitude * phase, n_fft, hop, n).astype(np.float32)


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    size = fft_size(len(x) + len(h) - 1)
    x, h = x.astype(np.float32, copy=False), h.astype(np.float32, copy=False)
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return y[: len(x)].astype(np.float32)


def augment_waveform(
    samples: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig,
    sample_rate: int,
    babble_source: Callable[[np.random.Generator], np.ndarray] | None = None,
) -> np.ndarray:
    """Resynthesis (``revoice``), fricatives moved (``shift_fricatives``),
    edge silence, speed, colouring (``random_eq``), reverberation, noise and
    gain, each drawn from ``rng``."""
    if config.revoice_prob > 0 and rng.random() < config.revoice_prob:
        samples = revoice(samples, rng, sample_rate)
    if config.fricative_shift_prob > 0 and rng.random() < config.fricative_shift_prob:
        samples = shift_fricatives(
            samples, rng, sample_rate, factor_range=config.fricative_shift_range
        )
    if config.edge_silence_prob > 0 and rng.random() < config.edge_silence_prob:
        low, high = config.edge_silence_seconds
        before, after = (int(rng.uniform(low, high) * sample_rate) for _ in range(2))
        samples = np.pad(samples, (before, after))
    speed = float(rng.choice(config.speeds))
    if speed != 1.0:
        samples = AF.resample(
            torch.from_numpy(samples), int(round(sample_rate * speed)), sample_rate
        ).numpy()
    if rng.random() < config.eq_prob:
        samples = random_eq(samples, rng, sample_rate, config.eq_db, config.eq_knots)
    if rng.random() < config.reverb_prob:
        rt60 = rng.uniform(*config.rt60)
        samples = _convolve(samples, _room_response(rng, sample_rate, rt60))
    if rng.random() < config.noise_prob:
        n = len(samples)
        kind = rng.integers(0, 5 if babble_source else 4)
        if kind == 0:
            noise = rng.standard_normal(n).astype(np.float32)
        elif kind == 1:
            noise = _colored_noise(rng, n, 1.0)  # pink
        elif kind == 2:
            noise = _colored_noise(rng, n, 2.0)  # brown
        elif kind == 3:
            noise = _hum(rng, n, sample_rate) + 0.1 * rng.standard_normal(n).astype(
                np.float32
            )
        else:
            noise = np.zeros(n, dtype=np.float32)
            for _ in range(rng.integers(2, 5)):
                other = babble_source(rng)  # type: ignore[misc]
                start = rng.integers(0, max(1, len(other) - n + 1))
                piece = other[start : start + n]
                noise[: len(piece)] += piece
        signal_power = float(np.mean(samples**2)) + 1e-10
        noise_power = float(np.mean(noise**2)) + 1e-10
        snr = rng.uniform(*config.snr_db)
        samples = samples + noise * np.sqrt(
            signal_power / (noise_power * 10 ** (snr / 10))
        )
    samples = samples * 10 ** (rng.uniform(*config.gain_db) / 20)
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if peak > 0.99:
        samples = samples * (0.99 / peak)
    return samples.astype(np.float32)


def vtlp_factors(
    rng: np.random.Generator, batch: int, config: AugmentConfig
) -> np.ndarray:
    """Per-utterance frequency warp factors for ``warp_spectrum``: uniform in
    ``vtlp_range`` with probability ``vtlp_prob``, else 1. Warping the
    spectrum moves formants without touching pitch or tempo, which speed
    perturbation cannot do: it makes new speakers out of the few synthetic
    voices there are to train on."""
    low, high = config.vtlp_range
    factors = rng.uniform(low, high, batch)
    return np.where(rng.random(batch) < config.vtlp_prob, factors, 1.0)


def spec_augment(
    features: Tensor, lengths: Tensor, config: AugmentConfig, fill: Tensor
) -> Tensor:
    """Frequency and time masks on a padded batch (B, T, M); masked cells
    take ``fill`` (M,), the feature mean, so they are zero after CMVN. Time
    masks scale with each utterance's length."""
    features = features.clone()
    fill = fill.to(features.dtype)
    batch, _, bins = features.shape
    device = features.device
    for _ in range(config.freq_masks):
        width = torch.randint(0, config.freq_width + 1, (batch, 1), device=device)
        start = (torch.rand(batch, 1, device=device) * (bins - width)).long()
        band = torch.arange(bins, device=device)[None, :]
        mask = (band >= start) & (band < start + width)  # (B, M)
        features = torch.where(mask[:, None, :], fill, features)
    frames = torch.arange(features.shape[1], device=device)[None, :]
    max_width = (lengths.to(device).float() * config.time_width_ratio).clamp(min=1)[
        :, None
    ]
    for _ in range(config.time_masks):
        width = (torch.rand(batch, 1, device=device) * max_width).long()
        start = (
            torch.rand(batch, 1, device=device)
            * (lengths.to(device)[:, None] - width).clamp(min=1)
        ).long()
        mask = (frames >= start) & (frames < start + width)  # (B, T)
        features = torch.where(mask[:, :, None], fill, features)
    return features
