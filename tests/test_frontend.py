"""Kaldi filterbank: numpy twin against torchaudio, streaming against offline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.asr.frontend import (
    FbankConfig,
    StreamingFbank,
    fbank_numpy,
    fbank_torch,
    mel_banks,
    num_frames,
)

CFG = FbankConfig()


def _noise(seconds: float, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(16000 * seconds)) * scale).astype(np.float32)


def _sweep(seconds: float = 3.0) -> np.ndarray:
    """Linear chirp from 50 Hz to 7.9 kHz at half full scale."""
    t = np.arange(int(16000 * seconds)) / 16000
    phase = 2 * np.pi * (50 * t + (7900 - 50) / (2 * seconds) * t**2)
    return (0.5 * np.sin(phase)).astype(np.float32)


def _wenet_fbank(samples: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The call WeNet and ChunkFormer make, written out independently."""
    waveform = torch.from_numpy(samples).to(dtype).unsqueeze(0) * (1 << 15)
    feats = kaldi.fbank(
        waveform,
        num_mel_bins=80,
        frame_length=25,
        frame_shift=10,
        dither=0.0,
        energy_floor=0.0,
        sample_frequency=16000,
    )
    return feats.to(torch.float32).numpy()


def test_config_geometry():
    assert (CFG.frame_length, CFG.frame_shift, CFG.fft_size) == (400, 160, 512)
    with pytest.raises(AttributeError):
        CFG.num_mel_bins = 40  # type: ignore[misc]


def test_num_frames():
    assert [num_frames(n) for n in (0, 1, 399, 400, 559, 560, 16000)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        98,
    ]
    for n in range(0, 3000, 7):
        expected = 0 if n < 400 else 1 + (n - 400) // 160
        assert num_frames(n) == expected == len(fbank_numpy(np.zeros(n, np.float32)))


def test_torch_wrapper_is_the_wenet_call():
    samples = _noise(1.0)
    ours = fbank_torch(torch.from_numpy(samples), CFG)
    assert ours.dtype == torch.float32 and ours.shape == (98, 80)
    np.testing.assert_array_equal(ours.numpy(), _wenet_fbank(samples, torch.float32))
    assert fbank_torch(torch.zeros(399)).shape == (0, 80)


def test_mel_banks_match_torchaudio():
    reference, _ = kaldi.get_mel_banks(80, 512, 16000.0, 20.0, 0.0, 100.0, -500.0, 1.0)
    ours = mel_banks(CFG)
    assert ours.shape == (80, 257) and not ours[:, -1].any()
    # torchaudio builds them in float32; ours are float64.
    np.testing.assert_allclose(ours[:, :-1], reference.numpy(), atol=2e-5)


def test_numpy_matches_torchaudio_on_noise():
    samples = _noise(2.0)
    ours = fbank_numpy(samples, CFG)
    assert ours.dtype == np.float32 and ours.shape == (198, 80)
    reference = fbank_torch(torch.from_numpy(samples)).numpy()
    assert np.abs(ours - reference).max() <= 1e-3


def test_numpy_matches_torchaudio_on_sweep():
    samples = _sweep()
    ours = fbank_numpy(samples, CFG)
    # Everywhere against torchaudio computing in float64.
    assert np.abs(ours - _wenet_fbank(samples, torch.float64)).max() <= 1e-3
    # torchaudio's float32 rounding noise sits ~110 dB below the tone, so on a
    # pure tone it dominates the far bins (differences up to ~2 nats there,
    # between torchaudio float32 and float64 alike). Compare where it does not.
    reference = _wenet_fbank(samples, torch.float32)
    within_60_db = ours >= ours.max(axis=1, keepdims=True) - 6 * np.log(10)
    assert within_60_db.mean() > 0.05
    assert np.abs(ours - reference)[within_60_db].max() <= 1e-3


def test_silence_and_short_input():
    assert fbank_numpy(np.zeros(399, np.float32)).shape == (0, 80)
    silence = fbank_numpy(np.zeros(1600, np.float32))
    np.testing.assert_allclose(silence, np.log(np.finfo(np.float32).eps))
    with pytest.raises(ValueError, match=r"\(T,\)"):
        fbank_numpy(np.zeros((2, 400), np.float32))


def test_long_input_is_batched_consistently():
    samples = _noise(45.0, seed=3)  # more frames than one internal batch
    ours = fbank_numpy(samples)
    assert len(ours) == num_frames(len(samples)) == 4498
    np.testing.assert_array_equal(
        ours[4000:4200], fbank_numpy(samples[640000:675000])[:200]
    )


@settings(max_examples=40, deadline=None)
@given(
    pieces=st.lists(st.integers(min_value=0, max_value=1200), min_size=1, max_size=12),
    seed=st.integers(min_value=0, max_value=3),
)
def test_streaming_equals_offline(pieces, seed):
    samples = _noise(sum(pieces) / 16000 + 0.01, seed=seed)
    stream = StreamingFbank()
    outputs, start = [], 0
    for size in pieces:
        outputs.append(stream.accept(samples[start : start + size]))
        start += size
        assert len(stream._pending) < CFG.frame_length  # bounded memory
    streamed = np.concatenate(outputs)
    np.testing.assert_array_equal(streamed, fbank_numpy(samples[:start]))
    assert stream.num_frames == len(streamed) == num_frames(start)
    assert stream.num_samples == start


def test_streaming_reset():
    stream = StreamingFbank()
    stream.accept(_noise(0.1))
    stream.reset()
    samples = _noise(0.3, seed=1)
    np.testing.assert_array_equal(stream.accept(samples), fbank_numpy(samples))


def test_numpy_part_imports_without_torch():
    code = (
        "import sys, numpy as np; from speech.asr.frontend import fbank_numpy;"
        "fbank_numpy(np.zeros(800, np.float32)); print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_fbank_batch_equals_torchaudio_per_row() -> None:
    import torch

    from speech.asr.frontend import fbank_batch

    rng = np.random.default_rng(7)
    rows = [
        rng.standard_normal(n).astype(np.float32) * 0.1
        for n in (16000, 5000, 399, 12345)
    ]
    padded = torch.zeros(len(rows), max(len(r) for r in rows))
    for i, r in enumerate(rows):
        padded[i, : len(r)] = torch.from_numpy(r)
    lengths = torch.tensor([len(r) for r in rows])
    features, counts = fbank_batch(padded, lengths)
    for i, r in enumerate(rows):
        reference = fbank_torch(torch.from_numpy(r))
        assert counts[i] == reference.shape[0]
        torch.testing.assert_close(
            features[i, : counts[i]], reference, atol=2e-3, rtol=1e-4
        )


def test_vtlp_warp_moves_formants_and_leaves_factor_one_alone() -> None:
    import torch

    from recipes.asr.augment import AugmentConfig, vtlp_factors
    from speech.asr.frontend import fbank_batch, warp_spectrum

    rate = 16000
    t = np.arange(rate) / rate
    tone = torch.tensor(np.sin(2 * np.pi * 1000 * t), dtype=torch.float32)[None]
    frames = tone.unfold(1, 400, 160) * torch.hann_window(400)
    power = torch.fft.rfft(frames, n=512).abs().square()  # (1, F, 257)
    peaks = {}
    for factor in (0.9, 1.0, 1.1):
        warped = warp_spectrum(power, torch.tensor([factor]))
        peaks[factor] = int(warped[0].mean(0).argmax()) * rate / 512
    assert peaks == {0.9: pytest.approx(900, abs=32), 1.0: 1000, 1.1: 1100 - 6.25}
    torch.testing.assert_close(warp_spectrum(power, torch.ones(1)), power)
    # a row's warp leaves the other rows' features as they were
    noise = torch.randn(2, 8000) * 0.1
    lengths = torch.tensor([8000, 8000])
    plain, _ = fbank_batch(noise, lengths)
    warped, _ = fbank_batch(noise, lengths, warp=torch.tensor([1.0, 1.1]))
    torch.testing.assert_close(warped[0], plain[0])
    assert (warped[1] - plain[1]).abs().mean() > 0.05
    # energy is neither created nor lost at the top of the band
    assert warp_spectrum(power, torch.tensor([1.12]))[0, :, -1].allclose(
        power[0, :, -1]
    )
    factors = vtlp_factors(np.random.default_rng(0), 1000, AugmentConfig())
    assert 0.7 < np.mean(factors != 1.0) < 0.9
    assert factors.min() >= 0.88 and factors.max() <= 1.12


def test_vtln_warp_in_the_filters_equals_the_training_warp() -> None:
    """FbankConfig(vtln_warp=a) folds warp_spectrum into the mel filters: the
    numpy and streaming features equal training's warped features."""
    import torch

    from speech.asr.frontend import (
        StreamingFbank,
        fbank_batch,
        fbank_torch,
        warp_matrix,
        warp_spectrum,
    )

    power = torch.rand(3, 5, 257, dtype=torch.float64)
    for factor in (0.8, 0.95, 1.2):
        expected = warp_spectrum(power, torch.full((3,), factor, dtype=torch.float64))
        got = power @ torch.tensor(warp_matrix(257, factor)).T
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    noise = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    for factor in (0.85, 1.25):
        warped_cfg = FbankConfig(vtln_warp=factor)
        features = fbank_numpy(noise, warped_cfg)
        reference, count = fbank_batch(
            torch.from_numpy(noise)[None],
            torch.tensor([len(noise)]),
            warp=torch.tensor([factor]),
        )
        torch.testing.assert_close(
            torch.from_numpy(features), reference[0, : count[0]], atol=2e-3, rtol=1e-4
        )
        assert np.abs(features - fbank_numpy(noise)).mean() > 0.05
        stream = StreamingFbank(warped_cfg)
        pieces = [stream.accept(noise[i : i + 999]) for i in range(0, 16000, 999)]
        assert np.array_equal(np.concatenate(pieces), features)
    assert np.array_equal(
        fbank_numpy(noise, FbankConfig(vtln_warp=1.0)), fbank_numpy(noise)
    )
    with pytest.raises(ValueError, match="vtln_warp must be within 0.5..2"):
        FbankConfig(vtln_warp=3.0)
    with pytest.raises(ValueError, match="fbank_torch has no vtln_warp"):
        fbank_torch(torch.from_numpy(noise), FbankConfig(vtln_warp=1.1))


def test_random_eq_colours_bands_within_its_bounds():
    from recipes.asr.augment import random_eq

    rate = 16000
    t = np.arange(rate) / rate
    low, high = np.sin(2 * np.pi * 250 * t), np.sin(2 * np.pi * 4000 * t)
    gains = []
    for seed in range(20):
        out = random_eq(
            (low + high).astype(np.float32), np.random.default_rng(seed), rate, 8.0
        )
        assert out.shape == (rate,) and out.dtype == np.float32
        spectrum = np.abs(np.fft.rfft(out)) / (rate / 2)  # 1 Hz bins
        gains.append(20 * np.log10(spectrum[[250, 4000]]))
    gains = np.array(gains)
    # each band is moved by at most its knot gain plus the tilt there
    assert np.abs(gains).max() <= 8.0 * (1 + 2 / 4) + 0.5
    # the two bands move independently and by audible amounts
    assert np.std(gains[:, 0] - gains[:, 1]) > 3.0
    assert np.abs(gains).mean() > 2.0


def test_random_eq_with_more_knots_shapes_nearby_bands_apart():
    """Two tones a third apart (800 Hz and 1 kHz) lie midway between the
    same two of the six default knots (577 Hz and 1.39 kHz) and move almost
    together; 16 knots put one just below 800 Hz (773 Hz) and one just above
    1 kHz (1.04 kHz), so they move apart. Bounds follow ``max_db``."""
    from recipes.asr.augment import random_eq

    rate = 16000
    t = np.arange(rate) / rate
    tones = (np.sin(2 * np.pi * 800 * t) + np.sin(2 * np.pi * 1000 * t)).astype(
        np.float32
    )

    def gains(knots: int, max_db: float) -> np.ndarray:
        rows = []
        for seed in range(30):
            out = random_eq(tones, np.random.default_rng(seed), rate, max_db, knots)
            spectrum = np.abs(np.fft.rfft(out)) / (rate / 2)
            rows.append(20 * np.log10(spectrum[[800, 1000]]))
        return np.array(rows)

    coarse, fine = gains(6, 12.0), gains(16, 12.0)
    spread = lambda g: np.std(g[:, 0] - g[:, 1])  # noqa: E731
    assert spread(fine) > 2 * spread(coarse)
    for g in (coarse, fine):
        assert np.abs(g).max() <= 12.0 * (1 + 2 / 4) + 0.5
    assert np.abs(gains(16, 0.0)).max() < 0.05  # 0 dB leaves the signal as it is


def test_augmentation_ffts_at_fast_lengths_match_direct_computation():
    from recipes.asr import augment

    def smooth(n: int) -> bool:
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in [*range(1, 400), 56789, 65537, 160001]:
        size = augment.fft_size(n)
        assert size >= n and smooth(size)
        assert not any(smooth(k) for k in range(n, min(size, n + 2000)))

    rng = np.random.default_rng(0)
    x = rng.standard_normal(16007).astype(np.float32)  # 16007 is prime
    h = rng.standard_normal(801).astype(np.float32)
    np.testing.assert_allclose(
        augment._convolve(x, h), np.convolve(x, h)[: len(x)], atol=2e-3
    )
    # the random EQ at a 5-smooth length with 1/16 s of padding equals the
    # same curve applied with generous padding (no wrap-around)
    rate = 16000
    for seed in range(5):
        out = augment.random_eq(x, np.random.default_rng(seed), rate, 8.0)
        draws = np.random.default_rng(seed)
        knots = np.geomspace(100.0, rate / 2, 6)
        gains_db = draws.uniform(-8.0, 8.0, len(knots))
        tilt_db = draws.uniform(-8.0, 8.0) * np.log2(knots / 1000.0) / 4
        size = 4 * 16384
        freqs = np.fft.rfftfreq(size, 1.0 / rate)
        curve = np.interp(
            np.log(np.maximum(freqs, 1.0)), np.log(knots), gains_db + tilt_db
        )
        spectrum = np.fft.rfft(x.astype(np.float64), size) * 10 ** (curve / 20)
        reference = np.fft.irfft(spectrum, size)[: len(x)]
        error = np.sqrt(np.mean((out - reference) ** 2) / np.mean(reference**2))
        assert error < 1e-3
    # hum drawn over one period and tiled equals the sines written out
    draws = np.random.default_rng(3)
    hum = augment._hum(np.random.default_rng(3), 50000, rate)
    base = draws.choice([50, 60])
    t = np.arange(50000) / rate
    reference = sum(
        draws.uniform(0.2, 1.0)
        / k
        * np.sin(2 * np.pi * base * k * t + draws.uniform(0, 6.3))
        for k in range(1, 6)
    )
    np.testing.assert_allclose(hum, reference, atol=1e-4)
    # pink and brown noise keep their slopes (3 and 6 dB per octave)
    for exponent, slope in ((1.0, 3.01), (2.0, 6.02)):
        noise = augment._colored_noise(np.random.default_rng(1), 56789, exponent)
        assert noise.shape == (56789,) and noise.dtype == np.float32
        power = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(len(noise), 1.0 / rate)
        low = power[(freqs > 200) & (freqs < 400)].mean()
        high = power[(freqs > 3200) & (freqs < 6400)].mean()
        assert 10 * np.log10(low / high) == pytest.approx(4 * slope, abs=1.0)


def _only(**parts):
    """An AugmentConfig with every waveform part off (speed 1, no noise,
    room, EQ, gain or edge silence) but ``parts``."""
    from dataclasses import replace

    from recipes.asr.augment import AugmentConfig

    off = replace(
        AugmentConfig(),
        speeds=(1.0,),
        noise_prob=0.0,
        reverb_prob=0.0,
        eq_prob=0.0,
        gain_db=(0.0, 0.0),
        edge_silence_prob=0.0,
    )
    return replace(off, **parts)


def test_edge_silence_pads_both_ends_within_its_range():
    from dataclasses import replace

    from recipes.asr.augment import augment_waveform

    rate = 16000
    speech = np.full(rate, 0.5, np.float32)  # a flat 1 s "utterance"
    only_edges = _only(edge_silence_prob=1.0)
    low, high = only_edges.edge_silence_seconds
    leads, tails = [], []
    for seed in range(40):
        out = augment_waveform(speech, np.random.default_rng(seed), only_edges, rate)
        voiced = np.flatnonzero(out)
        assert len(voiced) == rate and np.all(out[voiced] == 0.5)  # speech intact
        lead, tail = voiced[0] / rate, (len(out) - 1 - voiced[-1]) / rate
        assert low - 1e-4 <= lead <= high and low - 1e-4 <= tail <= high
        leads.append(lead)
        tails.append(tail)
    # each side is drawn on its own, over the whole range
    assert np.std(np.subtract(leads, tails)) > 0.1
    assert max(leads) - min(leads) > 0.3
    # at probability 0 the input comes back unpadded
    never = replace(only_edges, edge_silence_prob=0.0)
    assert len(augment_waveform(speech, np.random.default_rng(0), never, rate)) == rate


def _vowel(f0: float, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """A pulse train at ``f0`` through three formant resonators (700, 1200
    and 2600 Hz): a steady synthetic vowel."""
    from scipy.signal import lfilter

    source = np.zeros(int(rate * seconds))
    source[:: int(round(rate / f0))] = 1.0
    out = source
    for freq, width in [(700, 80), (1200, 90), (2600, 120)]:
        r = np.exp(-np.pi * width / rate)
        out = lfilter(
            [1.0], [1.0, -2 * r * np.cos(2 * np.pi * freq / rate), r * r], out
        )
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.mark.parametrize("f0", [90.0, 120.0, 220.0, 330.0])
def test_frame_f0_finds_the_period_not_a_multiple(f0):
    from recipes.asr.augment import _frame_f0

    rate = 16000
    found = _frame_f0(_vowel(f0), rate, 512, 80)[5:-5]
    assert np.mean(found > 0) > 0.95
    assert np.median(found) == pytest.approx(f0, rel=0.03)
    noise = 0.1 * np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    assert np.mean(_frame_f0(noise, rate, 512, 80) > 0) < 0.05  # noise is unvoiced


@pytest.mark.parametrize("f0, pitch", [(120.0, 1.0), (120.0, 1.15), (220.0, 0.85)])
def test_revoice_keeps_envelope_level_and_length_with_a_new_source(f0, pitch):
    from scipy.signal import welch

    from recipes.asr.augment import _frame_f0, revoice

    rate = 16000
    vowel = _vowel(f0)
    out = revoice(vowel, np.random.default_rng(0), rate, pitch, 1.5, 0.1, 1.0)
    assert out.shape == vowel.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.sqrt(np.mean(out**2)) == pytest.approx(
        np.sqrt(np.mean(vowel**2)), rel=1e-3
    )
    # the new source's pitch, not a copy of the input
    assert np.median(_frame_f0(out, rate, 512, 80)[5:-5]) == pytest.approx(
        f0 * pitch, rel=0.03
    )
    assert np.linalg.norm(out - vowel) > 0.5 * np.linalg.norm(vowel)
    # the envelope stays: every band within 6 dB of the input's level there
    # (the levels span 58 dB)
    freqs, before = welch(vowel, rate, nperseg=1024)
    _, after = welch(out, rate, nperseg=1024)
    bands = [
        (0, 500),
        (500, 900),
        (900, 1500),
        (1500, 2300),
        (2300, 3000),
        (3000, 8000),
    ]
    level = lambda p, lo, hi: 10 * np.log10(p[(freqs >= lo) & (freqs < hi)].mean())  # noqa: E731
    for lo, hi in bands:
        assert abs(level(before, lo, hi) - level(after, lo, hi)) < 6.0, (lo, hi)


@pytest.mark.parametrize("f0", [120.0, 220.0])
def test_revoice_warp_moves_the_formants(f0):
    """A warp of the envelope by w moves the power centroid of the formant
    region (300-1600 Hz) by w, against the same resynthesis unwarped; the
    pitch stays."""
    from scipy.signal import welch

    from recipes.asr.augment import _frame_f0, revoice

    rate = 16000
    vowel = _vowel(f0)

    def centroid(x: np.ndarray) -> float:
        freqs, power = welch(x, rate, nperseg=1024)
        band = (freqs > 300) & (freqs < 1600)
        return float((freqs[band] * power[band]).sum() / power[band].sum())

    outs = {
        w: revoice(vowel, np.random.default_rng(0), rate, 1.0, 1.5, 0.1, w)
        for w in (0.87, 1.0, 1.15)
    }
    for w in (0.87, 1.15):
        assert centroid(outs[w]) / centroid(outs[1.0]) == pytest.approx(w, rel=0.04)
        assert np.median(_frame_f0(outs[w], rate, 512, 80)[5:-5]) == pytest.approx(
            f0, rel=0.03
        )


def test_revoice_draws_per_utterance_and_leaves_silence_and_short_input():
    from dataclasses import replace

    from recipes.asr.augment import AugmentConfig, augment_waveform, revoice

    rate = 16000
    vowel = _vowel(120.0)
    a = revoice(vowel, np.random.default_rng(1), rate)
    assert np.array_equal(a, revoice(vowel, np.random.default_rng(1), rate))
    assert not np.allclose(a, revoice(vowel, np.random.default_rng(2), rate))
    silent = np.zeros(rate, np.float32)
    assert np.array_equal(revoice(silent, np.random.default_rng(0), rate), silent)
    short = vowel[:100]
    assert np.array_equal(revoice(short, np.random.default_rng(0), rate), short)
    # in the pipeline: off by default (the rng stream of the other parts is
    # unchanged), always on at probability 1
    only = _only()
    assert AugmentConfig().revoice_prob == 0.0
    plain = augment_waveform(vowel, np.random.default_rng(3), only, rate)
    assert np.allclose(plain, vowel)
    always = replace(only, revoice_prob=1.0)
    out = augment_waveform(vowel, np.random.default_rng(3), always, rate)
    assert out.shape == vowel.shape
    assert np.linalg.norm(out - vowel) > 0.5 * np.linalg.norm(vowel)


@pytest.mark.parametrize("factor", [0.7, 1.2])
def test_shift_fricatives_moves_the_noise_and_leaves_the_vowels(factor):
    """A vowel, an /s/-like noise band at 4.5-5.5 kHz, the vowel again: the
    noise's spectral peak moves by ``factor``, the vowels stay as they were,
    the length stays; at factor 1 nothing moves."""
    from scipy.signal import butter, sosfilt, welch

    from recipes.asr.augment import shift_fricatives

    rate = 16000
    rng = np.random.default_rng(0)
    vowel = _vowel(120.0, rate, 0.5)
    band = butter(4, [4500, 5500], btype="band", fs=rate, output="sos")
    hiss = sosfilt(band, rng.standard_normal(rate // 2))
    hiss *= np.sqrt(np.mean(vowel**2) / np.mean(hiss**2))
    x = np.concatenate([vowel, hiss, vowel]).astype(np.float32)

    def peak(y: np.ndarray) -> float:
        freqs, power = welch(y[rate // 2 + 800 : rate - 800], rate, nperseg=1024)
        return float(freqs[np.argmax(power)])

    out = shift_fricatives(x, rng, rate, factor)
    assert out.shape == x.shape and out.dtype == np.float32
    assert peak(out) == pytest.approx(peak(x) * factor, rel=0.05)
    inner = slice(800, rate // 2 - 800)  # the first vowel, away from the hiss
    assert np.allclose(out[inner], x[inner], atol=1e-3 * np.abs(x).max())
    same = shift_fricatives(x, rng, rate, 1.0)
    assert np.allclose(same, x, atol=1e-3 * np.abs(x).max())


def test_shift_fricatives_draws_its_factor_and_leaves_voiced_or_silent_input():

    from recipes.asr.augment import AugmentConfig, augment_waveform, shift_fricatives

    rate = 16000
    vowel = _vowel(120.0)
    # no fricative frame: returned as it came
    assert np.array_equal(
        shift_fricatives(vowel, np.random.default_rng(0), rate), vowel
    )
    silent = np.zeros(rate, np.float32)
    assert np.array_equal(
        shift_fricatives(silent, np.random.default_rng(0), rate), silent
    )
    assert AugmentConfig().fricative_shift_prob == 0.0
    only = _only(fricative_shift_prob=1.0, fricative_shift_range=(0.6, 0.6))
    rng = np.random.default_rng(1)
    hiss = (0.1 * rng.standard_normal(rate)).astype(np.float32)
    from scipy.signal import butter, sosfilt

    hiss = sosfilt(butter(4, 4000, btype="high", fs=rate, output="sos"), hiss)
    hiss = hiss.astype(np.float32)
    out = augment_waveform(hiss, np.random.default_rng(2), only, rate)
    high = lambda y: np.sum(np.abs(np.fft.rfft(y)[4000:]) ** 2)  # noqa: E731  (>4 kHz)
    assert high(out) < 0.5 * high(hiss)  # moved down by 0.6
