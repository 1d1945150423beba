"""Long recordings for long-form WER: held-out utterances joined with pauses.

Each recording is one held-out voice reading held-out test sentences one
after another with a random pause of ``PAUSE_SECONDS`` between them, until it
is at least ``minutes`` long. It is written to ``longform/lf-<n>.wav`` and
listed in ``longform.jsonl`` with the joined reference text and the time span
of every sentence::

    {"audio": "longform/lf-000.wav", "duration": 612.4, "text": "...",
     "speaker": "flite:rms", "segments": [{"start": 0.0, "end": 2.9,
     "text": "..."}, ...]}
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recipes.data.audio import read_wav, write_wav
from recipes.data.sentences import Sentence
from recipes.data.synthesis import Job, run_jobs

__all__ = ["PAUSE_SECONDS", "build_long_form"]

logger = logging.getLogger(__name__)

PAUSE_SECONDS = (0.3, 1.5)
_WORDS_PER_SECOND = 170 / 60  # to estimate how many sentences fill a recording


def _estimate_seconds(sentence: Sentence) -> float:
    return len(sentence.text.split()) / _WORDS_PER_SECOND + sum(PAUSE_SECONDS) / 2


class _Reader:
    """Cycles through a voice's sentence pool, reshuffling after each pass."""

    def __init__(self, pool: Sequence[Sentence], rng: random.Random) -> None:
        self.pool = list(pool)
        self.rng = rng
        self.order: list[Sentence] = []

    def take(self, seconds: float) -> list[Sentence]:
        taken: list[Sentence] = []
        while seconds > 0:
            if not self.order:
                self.order = self.rng.sample(self.pool, len(self.pool))
            sentence = self.order.pop()
            taken.append(sentence)
            seconds -= _estimate_seconds(sentence)
        return taken


def build_long_form(
    root: Path,
    pool: Sequence[Sentence],
    voices: Sequence[str],
    count: int,
    minutes: float,
    sample_rate: int,
    seed: int,
    workers: int,
) -> list[dict]:
    """Write ``count`` recordings of at least ``minutes``; return their rows."""
    if count <= 0:
        return []
    if not pool or not voices:
        raise ValueError("long-form recordings need test sentences and held-out voices")
    target = minutes * 60
    scratch = root / "longform" / "segments"
    readers = [
        _Reader(pool, random.Random(f"{seed}/longform/{n}")) for n in range(count)
    ]
    # per recording: (samples, sample rate, job) of each sentence read
    pieces: list[list[tuple[np.ndarray, int, Job]]] = [[] for _ in range(count)]
    spoken = [0.0] * count
    planned = [0] * count
    for _round in range(20):  # top up until every recording is long enough
        jobs: list[Job] = []
        for n in range(count):
            missing = (target - spoken[n]) * 1.1
            if missing <= 0:
                continue
            for sentence in readers[n].take(missing):
                audio = f"longform/segments/lf-{n:03d}-{planned[n]:05d}.wav"
                voice = voices[n % len(voices)]
                jobs.append(
                    Job(
                        f"lf{n}",
                        planned[n],
                        voice,
                        sentence.raw,
                        sentence.text,
                        rate=170,
                        pitch=50,
                        audio=audio,
                    )
                )
                planned[n] += 1
        if not jobs:
            break
        for result in run_jobs(jobs, root, sample_rate, workers):
            if result.error:
                logger.warning(
                    "long-form: skipped %r: %s", result.job.text, result.error
                )
                continue
            samples, rate = read_wav(root / result.job.audio)
            n = int(result.job.split[2:])
            pieces[n].append((samples, rate, result.job))
            spoken[n] += result.duration + sum(PAUSE_SECONDS) / 2
    rows = [
        _join(root, n, pieces[n], random.Random(f"{seed}/pauses/{n}"))
        for n in range(count)
    ]
    shutil.rmtree(scratch, ignore_errors=True)
    with (root / "longform.jsonl").open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")
    return rows


def _join(
    root: Path,
    n: int,
    pieces: list[tuple[np.ndarray, int, Job]],
    rng: random.Random,
) -> dict:
    if not pieces:
        raise RuntimeError(f"long-form recording {n}: no sentence was synthesised")
    sample_rate = pieces[0][1]  # one voice per recording, so one rate
    chunks: list[np.ndarray] = []
    segments: list[dict[str, float | str]] = []
    position = 0
    for i, (samples, _, job) in enumerate(pieces):
        if i:
            pause = np.zeros(int(rng.uniform(*PAUSE_SECONDS) * sample_rate), np.float32)
            chunks.append(pause)
            position += len(pause)
        chunks.append(samples)
        start, position = position, position + len(samples)
        segments.append(
            {
                "start": round(start / sample_rate, 3),
                "end": round(position / sample_rate, 3),
                "text": job.text,
            }
        )
    audio = f"longform/lf-{n:03d}.wav"
    write_wav(root / audio, np.concatenate(chunks), sample_rate)
    duration = position / sample_rate
    logger.info(
        "long-form %s: %.1f min, %d sentences", audio, duration / 60, len(pieces)
    )
    return {
        "audio": audio,
        "duration": round(duration, 4),
        "text": " ".join(job.text for _, _, job in pieces),
        "speaker": pieces[0][2].voice,
        "segments": segments,
    }
