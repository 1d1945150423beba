"""Synthesise planned utterances to WAV files, in parallel worker processes.

One ``Job`` is one utterance: a voice, the normalised text, its prosody and
the relative path of its WAV. A worker speaks it, trims silence to at most
``KEEP_SECONDS`` at each end, converts it to the corpus rate, scales its peak
to ``PEAK`` and writes 16-bit PCM. A failure never stops the build: it comes
back as a ``Result`` with ``error`` set.

Workers are started with ``forkserver`` (fresh processes that have not loaded
torch or espeak-ng from the parent) and each initialises espeak-ng once.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipes.data.audio import resample, trim_silence, write_wav
from recipes.data.voices import Voice, speak
from speech.text import espeak

__all__ = ["KEEP_SECONDS", "PEAK", "Job", "Result", "run_jobs", "synthesize_job"]

logger = logging.getLogger(__name__)

KEEP_SECONDS = 0.05  # silence kept before and after the speech
PEAK = 0.9  # peak amplitude of every written utterance


@dataclass(frozen=True)
class Job:
    split: str
    index: int  # position within the split
    voice: str  # voice spec, e.g. "espeak:en-us+f3"
    raw: str  # sentence as written
    text: str  # normalised sentence: what is spoken
    rate: int  # words per minute
    pitch: int  # 0..100 (espeak-ng only)
    audio: str  # WAV path relative to the corpus folder
    accent: str = ""  # recipes.data.accent spec (espeak-ng voices only)


@dataclass(frozen=True)
class Result:
    job: Job
    duration: float  # seconds of the written WAV; 0 when failed
    engine_seconds: float  # time spent in the speech engine
    total_seconds: float  # engine, trimming, resampling and writing
    error: str = ""

    # The fields index files need, so a Result can stand for its Job.
    @property
    def split(self) -> str:
        return self.job.split

    @property
    def voice(self) -> str:
        return self.job.voice

    @property
    def raw(self) -> str:
        return self.job.raw

    @property
    def text(self) -> str:
        return self.job.text

    @property
    def audio(self) -> str:
        return self.job.audio


def synthesize_job(job: Job, root: str, sample_rate: int) -> Result:
    """Speak one job into ``root/job.audio``; ``sample_rate`` 0 keeps the native."""
    start = time.perf_counter()
    engine_seconds = 0.0
    try:
        samples, rate = speak(
            Voice.parse(job.voice), job.text, job.rate, job.pitch, job.accent
        )
        engine_seconds = time.perf_counter() - start
        samples = trim_silence(samples, rate, keep_seconds=KEEP_SECONDS)
        if len(samples) < 0.1 * rate:
            raise RuntimeError("the engine returned no speech")
        target = sample_rate or rate
        samples = resample(samples, rate, target)
        samples = samples * np.float32(PEAK / max(float(np.abs(samples).max()), 1e-4))
        path = Path(root) / job.audio
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, samples, target)
        duration = len(samples) / target
        return Result(job, duration, engine_seconds, time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - one bad utterance must not stop a build
        message = f"{type(error).__name__}: {error}"
        return Result(job, 0.0, engine_seconds, time.perf_counter() - start, message)


def _warm_up() -> None:
    """Pay one-off costs before timing: scipy's import, espeak-ng's start."""
    resample(np.zeros(441, np.float32), 22050, 16000)
    espeak.sample_rate()


def run_jobs(
    jobs: Sequence[Job], root: Path, sample_rate: int, workers: int
) -> list[Result]:
    """Results in the order of ``jobs``; progress is logged every ~10%."""
    work = functools.partial(synthesize_job, root=str(root), sample_rate=sample_rate)
    step = max(1, len(jobs) // 10)
    results: list[Result] = []
    start = time.perf_counter()

    def collect(result: Result) -> None:
        results.append(result)
        if len(results) % step == 0 or len(results) == len(jobs):
            elapsed = time.perf_counter() - start
            logger.info("synthesised %d/%d in %.1f s", len(results), len(jobs), elapsed)

    if workers <= 1 or len(jobs) <= 1:
        _warm_up()
        for job in jobs:
            collect(work(job))
        return results
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in methods else "spawn"
    )
    chunk = max(1, min(32, len(jobs) // (workers * 8)))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_warm_up) as pool:
        for result in pool.map(work, jobs, chunksize=chunk):
            collect(result)
    return results
