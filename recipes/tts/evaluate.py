"""Evaluate a voice: intelligibility against the teacher voice, and chunk seams.

    python -m recipes.tts.evaluate --sentences data/tts/metadata_dev.csv --limit 100
    python -m recipes.tts.evaluate --voice speech/models/tts \
        --asr-model speech/models/asr

Intelligibility: every held-out sentence is synthesised by the voice and read
by the teacher (flite ``slt``, the voice the corpus was made with), and both
are transcribed by an independent recogniser (pocketsphinx's US English
model, offline) and, with ``--asr-model``, by our own; the report gives the
WER of each. The target is a voice WER within 3 points of the teacher's.

Seams: the voice's streamed output (``Synthesizer.stream``) against its
offline output (max abs difference), and a click measure at decoder chunk
boundaries: the mean energy of the second difference of the waveform within
``--seam-width`` samples of each boundary, over the same energy everywhere
else (a click raises it), beside the same ratio half a chunk away from the
boundaries (the control: equal values mean the boundaries are like any other
place). The start of the audio is not a boundary (the onset from silence
would dominate the measure).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from speech.asr.metrics import word_error_rate
from speech.text.normalize import asr_transcript
from speech.tts.synthesizer import load_synthesizer


def _read_sentences(path: Path, limit: int) -> list[str]:
    sentences = []
    with path.open(newline="") as f:
        for row in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE):
            if row:
                sentences.append(row[-1])
    return sentences[:limit] if limit else sentences


def _teacher(text: str, voice: str) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(
            ["flite", "-voice", voice, "-t", text, "-o", tmp.name], check=True
        )
        with wave.open(tmp.name) as w:
            rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0, rate


class _Sphinx:
    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000)

    def __call__(self, samples: np.ndarray, rate: int) -> str:
        if rate != 16000:
            import soxr

            samples = soxr.resample(samples, rate, 16000)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def seam_ratio(audio: np.ndarray, boundary: int, width: int, offset: int = 0) -> float:
    """Second-difference energy near ``offset`` + multiples of ``boundary``
    samples (the first half chunk, the audio's onset, excluded) over that
    energy elsewhere."""
    energy = np.diff(audio, n=2) ** 2
    index = np.arange(len(energy)) + 1
    shifted = index - offset
    distance = np.abs((shifted + boundary // 2) % boundary - boundary // 2)
    near = (distance < width) & (index > boundary // 2)
    if not near.any() or near.all():
        return float("nan")
    return float(energy[near].mean() / max(energy[~near].mean(), 1e-20))


def band_measures(audio: np.ndarray, rate: int) -> tuple[float, float]:
    """(share of the energy above 0.47 * rate, i.e. 7.5 kHz at 16 kHz; the
    largest Nyquist-frequency amplitude over 256-sample windows): a buzz the
    vocoder adds where a band-limited corpus has nothing."""
    if len(audio) < 256:
        return float("nan"), float("nan")
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    share = float(power[freqs > 0.47 * rate].sum() / max(power.sum(), 1e-20))
    alternating = audio * (-1.0) ** np.arange(len(audio))
    nyquist = np.abs(np.convolve(alternating, np.ones(256) / 256, "valid"))
    return share, float(nyquist.max())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--voice", default=None, help="voice folder (default: the shipped voice)"
    )
    p.add_argument(
        "--sentences",
        required=True,
        help="LJSpeech-style metadata (id|text|normalized)",
    )
    p.add_argument("--limit", type=int, default=100)
    p.add_argument(
        "--teacher", default="slt", help="flite voice the corpus was made with"
    )
    p.add_argument(
        "--asr-model", help="also transcribe with our recognizer (model folder)"
    )
    p.add_argument("--seam-width", type=int, default=8)
    args = p.parse_args(argv)

    tts = load_synthesizer(args.voice)
    sphinx = _Sphinx()
    recognizer = None
    if args.asr_model:
        from speech.asr.recognizer import load_recognizer

        recognizer = load_recognizer(args.asr_model)
    sentences = _read_sentences(Path(args.sentences), args.limit)
    rows = {
        "voice_sphinx": [],
        "teacher_sphinx": [],
        "voice_ours": [],
        "teacher_ours": [],
    }
    max_diff, seams, control = 0.0, [], []
    bands: dict[str, list[tuple[float, float]]] = {"voice": [], "teacher": []}
    config = getattr(getattr(tts, "model", None), "config", None)
    chunk_samples = config.chunk_size * config.mel.hop_length if config else None
    for text in sentences:
        reference = asr_transcript(text)
        audio = tts.synthesize(text)
        streamed = np.concatenate(list(tts.stream(text)))
        max_diff = max(
            max_diff, float(np.max(np.abs(streamed - audio))) if len(audio) else 0.0
        )
        if chunk_samples:
            seams.append(seam_ratio(audio, chunk_samples, args.seam_width))
            control.append(
                seam_ratio(
                    audio, chunk_samples, args.seam_width, offset=chunk_samples // 2
                )
            )
        teacher, rate = _teacher(text, args.teacher)
        bands["voice"].append(band_measures(audio, tts.sample_rate))
        bands["teacher"].append(band_measures(teacher, rate))
        rows["voice_sphinx"].append(
            (reference, asr_transcript(sphinx(audio, tts.sample_rate)))
        )
        rows["teacher_sphinx"].append(
            (reference, asr_transcript(sphinx(teacher, rate)))
        )
        if recognizer is not None:
            import soxr

            ours = soxr.resample(audio, tts.sample_rate, recognizer.sample_rate)
            mine = soxr.resample(teacher, rate, recognizer.sample_rate)
            rows["voice_ours"].append(
                (reference, asr_transcript(recognizer.transcribe(ours).text))
            )
            rows["teacher_ours"].append(
                (reference, asr_transcript(recognizer.transcribe(mine).text))
            )
    print(f"{len(sentences)} held-out sentences\n")
    print("| recogniser | voice WER % | teacher WER % | difference |")
    print("|---|---|---|---|")
    for name, label in (("sphinx", "pocketsphinx (independent)"), ("ours", "our ASR")):
        if rows[f"voice_{name}"]:
            voice = word_error_rate(rows[f"voice_{name}"])
            teacher = word_error_rate(rows[f"teacher_{name}"])
            print(f"| {label} | {voice:.1f} | {teacher:.1f} | {voice - teacher:+.1f} |")
    print(f"\nstreamed vs offline audio: max abs difference {max_diff:.2e}")
    for name, values in bands.items():
        share = np.nanmean([v[0] for v in values])
        peak = np.nanmax([v[1] for v in values])
        print(
            f"{name}: energy above 7.5 kHz (at 16 kHz) {share:.2e} of the total, "
            f"largest Nyquist amplitude {peak:.4f}"
        )
    if seams:
        print(
            f"chunk seams (every {chunk_samples} samples, +-{args.seam_width}): "
            f"second-difference energy ratio mean {np.nanmean(seams):.3f}, "
            f"max {np.nanmax(seams):.3f}; half a chunk away (control) mean "
            f"{np.nanmean(control):.3f}, max {np.nanmax(control):.3f}"
        )


if __name__ == "__main__":
    main()
