"""Long-term average spectrum of synthetic voices, band by band: how a voice's
timbre differs from another's, measured on its signal alone (no model reads
it). It showed that the held-out flite voice ``rms`` differs from the
training men by a spectral shape (10-12 dB less at 0.5-1 kHz, more at 3-4
kHz) rather than by a vocal tract length, which a frequency warp would model.

    python benchmarks/voice_spectra.py --manifest dev.jsonl --limit 40 \
        --voices flite:rms flite:awb flite:kal16 festival:ked_diphone

Each voice reads the manifest's first ``--limit`` sentences at the neutral
rate and pitch (175 words per minute, pitch 50). The audio is resampled to
16 kHz; 512-point power spectra (10 ms hop) of the frames within 30 dB of
the loudest are averaged per sentence, normalised by their mean, and then
averaged over the sentences. Printed per voice: that spectrum's level in dB
in each band, and the speaking rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.common import read_manifest  # noqa: E402
from recipes.data.voices import Voice, VoiceError, check_voice, speak  # noqa: E402

SAMPLE_RATE = 16000
FFT_SIZE = 512
HOP = 160
BANDS_HZ = (0, 500, 1000, 2000, 3000, 4000, 6000, 8000)


def average_spectrum(voice: Voice, sentences: list[str]) -> tuple[np.ndarray, float]:
    """(mean normalised power per FFT bin, words per minute) of ``voice``."""
    import librosa

    spectra, seconds, words = [], 0.0, 0
    for text in sentences:
        audio, rate = speak(voice, text, 175, 50)
        audio = np.asarray(audio, dtype=np.float32)
        if rate != SAMPLE_RATE:
            audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
        power = np.abs(librosa.stft(audio, n_fft=FFT_SIZE, hop_length=HOP)) ** 2
        energy = power.sum(axis=0)
        power = power[:, energy > energy.max() * 1e-3]  # within 30 dB
        spectra.append(power.mean(axis=1) / power.mean())
        seconds += len(audio) / SAMPLE_RATE
        words += len(text.split())
    return np.mean(spectra, axis=0), 60.0 * words / seconds


def band_levels(spectrum: np.ndarray, edges: tuple[int, ...] = BANDS_HZ) -> list[float]:
    """Mean level (dB) of ``spectrum``'s bins within each band of ``edges``."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, len(spectrum))
    level = 10.0 * np.log10(spectrum + 1e-12)
    return [
        float(level[(freqs >= low) & (freqs < high)].mean())
        for low, high in zip(edges[:-1], edges[1:], strict=True)
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--manifest", required=True, help="JSONL manifest whose texts are read"
    )
    p.add_argument("--limit", type=int, default=40, help="sentences per voice")
    p.add_argument("--voices", nargs="+", required=True, help="engine:name specs")
    args = p.parse_args(argv)

    try:
        sentences = [row.text for row in read_manifest(args.manifest)][: args.limit]
    except (OSError, ValueError) as error:
        sys.exit(f"error: {args.manifest}: {error}")
    if not sentences:
        sys.exit(f"error: {args.manifest}: no sentences")
    names = [
        f"{low / 1000:g}-{high / 1000:g}"
        for low, high in zip(BANDS_HZ[:-1], BANDS_HZ[1:], strict=True)
    ]
    print(f"| voice | {' | '.join(names)} kHz (dB) | words per minute |")
    print("|---|" + "---|" * len(names) + "---|")
    for spec in args.voices:
        try:
            voice = Voice.parse(spec)
            check_voice(voice)
        except VoiceError as error:
            print(f"error: {error}", file=sys.stderr)
            continue
        try:
            spectrum, wpm = average_spectrum(voice, sentences)
        except (OSError, RuntimeError, ValueError) as error:  # an engine failed
            print(f"error: {spec}: {error}", file=sys.stderr)
            continue
        levels = " | ".join(f"{value:.1f}" for value in band_levels(spectrum))
        print(f"| {spec} | {levels} | {wpm:.0f} |", flush=True)


if __name__ == "__main__":
    main()
