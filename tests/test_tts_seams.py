"""The chunk-seam measure of ``recipes.tts.evaluate``."""

from __future__ import annotations

import numpy as np

from recipes.tts.evaluate import seam_ratio

BOUNDARY, WIDTH = 4096, 8


def _smooth(n: int) -> np.ndarray:
    t = np.arange(n) / 16000
    rng = np.random.default_rng(0)
    noise = np.convolve(rng.standard_normal(n), np.ones(16) / 16, "same")
    return 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * noise


def test_clicks_at_boundaries_stand_out_from_the_control() -> None:
    audio = _smooth(20 * BOUNDARY)
    audio[BOUNDARY::BOUNDARY] += 0.2  # a step at every boundary
    assert seam_ratio(audio, BOUNDARY, WIDTH) > 3.0
    assert seam_ratio(audio, BOUNDARY, WIDTH, offset=BOUNDARY // 2) < 1.5


def test_the_onset_is_not_a_boundary() -> None:
    audio = _smooth(20 * BOUNDARY)
    audio[:4] = [0.9, -0.9, 0.9, -0.9]  # a burst at the very start only
    with_onset = seam_ratio(audio, BOUNDARY, WIDTH)
    control = seam_ratio(audio, BOUNDARY, WIDTH, offset=BOUNDARY // 2)
    assert abs(with_onset - control) < 0.3 * control
