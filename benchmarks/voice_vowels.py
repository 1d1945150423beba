"""Vowel formants and fricative spectra of synthetic voices, measured on their
signal alone (no model reads it). It showed that the held-out flite voice
``rms`` puts /s/ low, just above its /sh/, and says "had" with the F1 of
"hid" (a raised /æ/), where every training voice keeps the two apart.

    python benchmarks/voice_vowels.py --voices flite:rms flite:awb \
        espeak:en-us+m1 espeak:en-us+m1@raised-ae:I@:all

``VOICE@ACCENT`` speaks an espeak-ng voice in a ``recipes.data.accent``
accent. Each voice reads single words at 150 words per minute, pitch 50:

* vowels: heed, hid, head, had, hud, hod, hood, who'd. Resampled to 10 kHz,
  pre-emphasised (0.7), LPC of order 12 on 25 ms Hamming frames every 10 ms
  over the middle 30 % of the longest voiced stretch; F1 and F2 are the two
  lowest resonances above 200 Hz narrower than 500 Hz, medians over frames.
* fricatives: sea, sue, sip, sell, sore against she, shoe, ship, shell,
  shore. At 16 kHz, 512-point frames every 10 ms that are unvoiced and have
  4x more power above 2 kHz than below 1 kHz; their median spectral peak
  above 1.5 kHz and the mean power centroid above 1.5 kHz, per sound.

Voicing is ``recipes.asr.augment._frame_f0``'s. A voice that cannot speak
is reported in one line and left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.asr.augment import _frame_f0  # noqa: E402
from recipes.data.accent import AccentError  # noqa: E402
from recipes.data.voices import Voice, VoiceError, check_voice, speak  # noqa: E402

VOWEL_WORDS = ("heed", "hid", "head", "had", "hud", "hod", "hood", "who'd")
S_WORDS = ("sea", "sue", "sip", "sell", "sore")
SH_WORDS = ("she", "shoe", "ship", "shell", "shore")


def _at(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    return (
        audio
        if rate == target
        else librosa.resample(audio, orig_sr=rate, target_sr=target)
    )


def resonances(frame: np.ndarray) -> np.ndarray:
    """Resonances (Hz, ascending) of one 25 ms frame at 10 kHz: pre-emphasis
    0.7, Hamming window, LPC of order 12; those above 200 Hz and narrower
    than 500 Hz."""
    import librosa

    frame = np.append(frame[0], frame[1:] - 0.7 * frame[:-1]) * np.hamming(len(frame))
    roots = np.roots(librosa.lpc(frame.astype(np.float64), order=12))
    roots = roots[np.imag(roots) > 0]
    hz = np.angle(roots) * 10000 / (2 * np.pi)
    bandwidth = -10000 / np.pi * np.log(np.abs(roots))
    return np.sort(hz[(hz > 200) & (bandwidth < 500)])


def formants(audio: np.ndarray, rate: int) -> tuple[float, float] | None:
    """(F1, F2) in Hz of the vowel of one spoken word, or None."""
    x = _at(audio, rate, 10000)
    f0 = _frame_f0(x, 10000, 320, 100)
    voiced = np.flatnonzero(f0 > 0)
    if len(voiced) < 5:
        return None
    runs = np.split(voiced, np.flatnonzero(np.diff(voiced) > 1) + 1)
    run = max(runs, key=len)
    found = []
    for i in run[int(len(run) * 0.35) : int(len(run) * 0.65) + 1]:
        frame = x[max(0, i * 100 - 125) : i * 100 + 125]
        if len(frame) < 250:
            continue
        hz = resonances(frame)
        if len(hz) >= 2:
            found.append(hz[:2])
    if not found:
        return None
    f1, f2 = np.median(np.array(found), axis=0)
    return float(f1), float(f2)


def fricative_spectrum(clips: list[tuple[np.ndarray, int]]) -> tuple[float, float]:
    """(median spectral peak, mean power centroid) above 1.5 kHz, in Hz, of
    the fricative frames of ``clips``."""
    import librosa

    peaks, centroids = [], []
    for audio, rate in clips:
        x = _at(audio, rate, 16000)
        power = np.abs(librosa.stft(x, n_fft=512, hop_length=160)) ** 2
        voiced = _frame_f0(x, 16000, 512, 160)[: power.shape[1]] > 0
        freqs = np.fft.rfftfreq(512, 1 / 16000)
        high = power[freqs >= 2000].sum(axis=0)
        low = power[freqs < 1000].sum(axis=0) + 1e-12
        loud = power.sum(axis=0) > 1e-3 * power.sum(axis=0).max()
        band = freqs >= 1500
        for frame in np.flatnonzero((high > 4 * low) & ~voiced[: len(high)] & loud):
            spectrum = power[band, frame]
            peaks.append(freqs[band][np.argmax(spectrum)])
            centroids.append((freqs[band] * spectrum).sum() / spectrum.sum())
    if not peaks:
        return float("nan"), float("nan")
    return float(np.median(peaks)), float(np.mean(centroids))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--voices", nargs="+", required=True, help="engine:name[@accent] specs"
    )
    args = p.parse_args(argv)
    vowel_rows, fricative_rows = [], []
    for spec in args.voices:
        name, _, accent = spec.partition("@")
        try:
            voice = Voice.parse(name)
            check_voice(voice)

            def say(word: str, voice: Voice = voice, accent: str = accent):
                return speak(voice, word, 150, 50, accent)

            vowels = [formants(*say(word)) for word in VOWEL_WORDS]
            s = fricative_spectrum([say(word) for word in S_WORDS])
            sh = fricative_spectrum([say(word) for word in SH_WORDS])
        except (VoiceError, AccentError, OSError, RuntimeError) as error:
            print(f"skipped {spec}: {error}", file=sys.stderr)
            continue
        cells = ["-" if v is None else f"{v[0]:.0f} / {v[1]:.0f}" for v in vowels]
        vowel_rows.append(f"| {spec} | " + " | ".join(cells) + " |")
        fricative_rows.append(
            f"| {spec} | {s[0]:.0f} / {sh[0]:.0f} | {s[1]:.0f} / {sh[1]:.0f} |"
        )
    print("F1 / F2 (Hz)\n")
    print("| voice | " + " | ".join(VOWEL_WORDS) + " |")
    print("|---" * (len(VOWEL_WORDS) + 1) + "|")
    print("\n".join(vowel_rows))
    print("\nFricatives above 1.5 kHz, /s/ / /sh/ (Hz)\n")
    print("| voice | median peak | mean centroid |")
    print("|---|---|---|")
    print("\n".join(fricative_rows))


if __name__ == "__main__":
    main()
