"""Cross-session batching: the model work of all live streams, done together
in one worker thread, off the event loop.

Each batcher is an asyncio task that waits until some stream has work,
gathers for ``batch_wait`` seconds, takes a snapshot of the work and runs one
*pass* in its worker thread, then hands the results back on the event loop.
While a pass runs, new audio and requests pile up, so the next pass is larger:
under load the batch size grows by itself and the step cost is shared.

ASR (``AsrBatcher``): every stream's next chunk window is stacked into one
``(B, 8C + 7, M)`` batch and its fixed-size encoder state into one stacked
state, one ``backend.step`` runs, and the states are split again; CTC
decoding and endpointing stay per stream. A stream advances at most
``passes_per_step`` chunks per pass, so a client that sends audio faster than
real time cannot hold up the others.

TTS (``TtsBatcher``): each request runs its encoder and predictors alone (one
sentence at a time, variable length), then the decoder and the vocoder advance
every request by one chunk (``chunk_size`` mel frames) on stacked decoder and
vocoder states. Requests without audio yet go first, then those whose playback
is closest to running dry. The batcher drives the synthesizers' step API
(``speech.tts.synthesizer_base``: ``frames``, ``decode_chunk``,
``vocode_chunk``, ``stack_states`` / ``unstack_states``), so it runs the
PyTorch and the ONNX Runtime synthesizer alike and never imports torch.

Letters: B streams, C chunk size, M mel bins, D model width.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from speech.asr.config import SUBSAMPLING, SUBSAMPLING_FIELD

if TYPE_CHECKING:
    from server.config import ServerConfig
    from server.metrics import Metrics
    from server.protocol import TtsRequest
    from speech.asr.recognizer import (
        Recognizer,
        RecognizerStream,
        RescoreJob,
        StreamEvent,
    )
    from speech.tts.synthesizer_base import SynthesizerBase

__all__ = ["AsrBatcher", "AsrSlot", "ChunkResult", "TtsBatcher", "TtsJob"]

logger = logging.getLogger("server.batching")


def _ignore(*args: Any) -> None:
    pass


def _always() -> bool:
    return True


class _BatchLoop:
    """An asyncio task feeding one worker thread, pass after pass."""

    name = "batch"

    def __init__(self, config: ServerConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-model")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.executor.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.config.batch_wait > 0:
                await asyncio.sleep(self.config.batch_wait)
            work = self._collect()
            if not work:
                continue
            started = time.perf_counter()
            try:
                outcome = await loop.run_in_executor(self.executor, self._pass, work)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a failing pass fails its streams only
                logger.exception("%s pass failed", self.name)
                self._fail(work, error)
            else:
                self._deliver(work, outcome, time.perf_counter() - started)
            self.passes += 1
            # Drop this pass's references now: idle, the loop must not keep
            # finished sessions alive.
            work = outcome = None
            if self._has_work():
                self._wake.set()

    # implemented by the subclasses
    def _collect(self) -> list[Any]:
        raise NotImplementedError

    def _pass(self, work: list[Any]) -> Any:
        raise NotImplementedError

    def _deliver(self, work: list[Any], outcome: Any, seconds: float) -> None:
        raise NotImplementedError

    def _fail(self, work: list[Any], error: Exception) -> None:
        raise NotImplementedError

    def _has_work(self) -> bool:
        raise NotImplementedError


# --------------------------------------------------------------------- ASR


@dataclass
class ChunkResult:
    """What one decoded chunk (or the end of a stream) gave."""

    events: list[StreamEvent]
    processed: float  # seconds of input audio decoded so far
    arrived: float | None  # when the last audio this chunk needed arrived


@dataclass
class _AsrOutcome:
    chunks: list[tuple[list[StreamEvent], int]] = field(default_factory=list)
    more: bool = False  # windows left over for the next pass
    done: bool = False  # the stream is finished (after the end)
    error: Exception | None = None
    audio_samples: int = 0  # model-rate samples fed


class AsrSlot:
    """A live stream's place in the batcher.

    The event loop owns ``pending`` and the flags; the worker thread owns
    ``stream`` (only one pass at a time touches it).
    """

    def __init__(
        self,
        stream: RecognizerStream,
        input_rate: int,
        deliver: Callable[[list[ChunkResult], bool, Exception | None], None],
    ) -> None:
        self.stream = stream
        self.input_rate = input_rate
        self.deliver = deliver
        self.pending: list[np.ndarray] = []
        self.received = 0  # input samples received
        self.decoded = 0  # input samples whose chunk has been decoded
        self.arrivals: deque[tuple[int, float]] = deque()  # (received, time)
        self.ending = False
        self.done = False
        self.closed = False
        self.more = False
        self.in_pass = False
        self.frames_used = 0  # feature frames consumed by windows (worker)
        self.input_ended = False  # the resampler has been flushed (worker)
        self.needed = 0  # input samples behind the results so far (worker)
        # second passes to run, with the batcher's order of arrival (worker)
        self.jobs: list[tuple[int, RescoreJob]] = []
        self.backlog_ok = asyncio.Event()
        self.backlog_ok.set()

    def release(self) -> None:
        """Forget the session (the slot is closed; no more deliveries)."""
        self.closed = True
        self.deliver = _ignore
        self.pending = []
        self.arrivals.clear()

    def add_audio(self, samples: np.ndarray, now: float) -> None:
        if len(samples) == 0:
            return
        self.pending.append(samples)
        self.received += len(samples)
        self.arrivals.append((self.received, now))

    @property
    def backlog_seconds(self) -> float:
        return (self.received - self.decoded) / self.input_rate

    def wants_work(self) -> bool:
        if self.closed or self.done or self.in_pass:
            return False
        return bool(self.pending) or self.more or self.ending

    def arrival_time(self, position: int) -> float | None:
        """When input sample ``position - 1`` arrived; forgets older ones."""
        while len(self.arrivals) > 1 and self.arrivals[0][0] < position:
            self.arrivals.popleft()
        return self.arrivals[0][1] if self.arrivals else None


class AsrBatcher(_BatchLoop):
    name = "asr"

    def __init__(
        self, recognizer: Recognizer, config: ServerConfig, metrics: Metrics
    ) -> None:
        super().__init__(config, metrics)
        self.recognizer = recognizer
        self.backend = recognizer.backend
        self.slots: list[AsrSlot] = []
        self.job_order = itertools.count()  # rescoring jobs, as they come
        fbank = recognizer.fbank_config
        self.frame_shift = fbank.frame_shift
        self.frame_length = fbank.frame_length
        self.model_rate = recognizer.sample_rate

    def add(self, slot: AsrSlot) -> None:
        self.slots.append(slot)

    def remove(self, slot: AsrSlot) -> None:
        slot.closed = True
        if slot in self.slots:
            self.slots.remove(slot)

    def _collect(self) -> list[tuple[AsrSlot, np.ndarray | None, bool, int]]:
        work = []
        for slot in self.slots:
            if not slot.wants_work():
                continue
            audio = None
            if slot.pending:
                audio = np.concatenate(slot.pending)
                slot.pending = []
            slot.in_pass = True
            work.append((slot, audio, slot.ending, slot.received))
        return work

    def _has_work(self) -> bool:
        return any(slot.wants_work() for slot in self.slots)

    def _needed_input(self, slot: AsrSlot, last_frame: int) -> int:
        """Input samples that feature frame ``last_frame`` needs (the
        stream's leading edge silence is not input)."""
        model = last_frame * self.frame_shift + self.frame_length
        model = max(model - self.recognizer.lead_samples, 0)
        return min(math.ceil(model * slot.input_rate / self.model_rate), slot.received)

    def _pass(
        self, work: list[tuple[AsrSlot, np.ndarray | None, bool, int]]
    ) -> dict[AsrSlot, _AsrOutcome]:
        outcome = {slot: _AsrOutcome() for slot, *_ in work}
        for slot, audio, ending, _ in work:
            try:
                if audio is not None:
                    slot.stream.feed(audio)
                if ending and not slot.input_ended:
                    # the resampler's tail and the edge silence join the last
                    # windows, as in RecognizerStream.finish
                    slot.stream.end_input()
                    slot.input_ended = True
            except Exception as error:
                outcome[slot].error = error
        live = [(slot, ending) for slot, _, ending, _ in work
                if outcome[slot].error is None]  # fmt: skip
        for _ in range(self.config.passes_per_step):
            ready = []
            for slot, ending in live:
                if slot.closed:
                    continue
                # after the end, the last short window too (zero-padded)
                item = slot.stream.next_window(final=ending)
                if item is not None:
                    last_frame = slot.frames_used + slot.stream.window - 1
                    slot.frames_used += slot.stream.stride
                    ready.append((slot, item, last_frame, ending))
            if not ready:
                break
            for start in range(0, len(ready), self.config.max_asr_batch):
                self._step(ready[start : start + self.config.max_asr_batch], outcome)
        for slot, _, ending, received in work:
            result = outcome[slot]
            if result.error is not None or slot.closed:
                continue
            left = len(slot.stream.features)
            result.more = left >= (SUBSAMPLING_FIELD if ending else slot.stream.window)
            if ending and not result.more and not slot.stream.finished:
                # what is left: the open segment
                try:
                    events = slot.stream.finish(defer=True)
                except Exception as error:
                    result.error = error
                    continue
                slot.needed = received
                result.chunks.append((events, received))
        self._rescore(work, outcome)
        for slot, _, ending, _ in work:
            result = outcome[slot]
            if result.error is not None or slot.closed:
                continue
            if slot.stream.rescoring:
                result.more = True  # second passes left for the next pass
            elif ending and slot.stream.finished:
                result.done = True
        return outcome

    def _rescore(
        self,
        work: list[tuple[AsrSlot, np.ndarray | None, bool, int]],
        outcome: dict[AsrSlot, _AsrOutcome],
    ) -> None:
        """Endpoint rescoring: the second passes of the segments closed so
        far, oldest first, in one masked batch of at most
        ``max_rescore_seconds`` of audio (at least one), after this pass's
        streaming steps so that they keep their pace under load."""
        queue = []
        for slot, *_ in work:
            if outcome[slot].error is None and not slot.closed:
                slot.jobs += [
                    (next(self.job_order), job)
                    for job in slot.stream.take_rescore_jobs()
                ]
                queue += [(order, slot, job) for order, job in slot.jobs]
        if not queue:
            return
        queue.sort(key=lambda item: item[0])  # in the order the segments closed
        chosen, seconds = [], 0.0
        for _, slot, job in queue:
            if chosen and seconds + job.seconds > self.config.max_rescore_seconds:
                break
            chosen.append((slot, job))
            seconds += job.seconds
        features = [rows for _, job in chosen for rows in job.features]
        try:
            encoded = self.backend.encode_list(features, self.recognizer.config.offline)
        except Exception as error:
            for slot, _ in chosen:
                outcome[slot].error = error
            return
        self.metrics.asr_rescore_seconds.observe(seconds)
        start = 0
        for slot, job in chosen:
            rows = len(job.features)
            slot.jobs = [item for item in slot.jobs if item[1] is not job]
            try:
                events = slot.stream.resolve(job, encoded[start : start + rows])
            except Exception as error:
                outcome[slot].error = error
                continue
            finally:
                start += rows
            if slot.stream.input_ended:  # after the end only finals
                events = [e for e in events if e.kind == "final"]
            outcome[slot].chunks.append((events, slot.needed))

    def _step(
        self,
        group: list[tuple[AsrSlot, tuple[np.ndarray, int], int, bool]],
        outcome: dict[AsrSlot, _AsrOutcome],
    ) -> None:
        # a stream runs one row per chunk, or one per warp of a warp ensemble
        windows = np.concatenate([item[0] for _, item, _, _ in group])  # (B, 8C+7, M)
        valid = np.concatenate(
            [np.full(len(item[0]), item[1], np.int64) for _, item, _, _ in group]
        )  # (B,)
        state = self.backend.stack_states([slot.stream.state for slot, *_ in group])
        log_probs, state = self.backend.step(windows, state, valid)  # (B, C, V)
        self.metrics.asr_batch.observe(len(group))
        rows = self.backend.unstack_states(state)
        end = 0
        for slot, (slot_windows, slot_valid), last_frame, ending in group:
            start, end = end, end + len(slot_windows)
            slot.stream.state = (
                rows[start]
                if end - start == 1
                else self.backend.stack_states(rows[start:end])
            )
            try:
                events = slot.stream.consume(
                    log_probs[start:end, :slot_valid], defer=True
                )
            except Exception as error:
                outcome[slot].error = error
                continue
            if ending:  # after the end only finals, as RecognizerStream.finish
                events = [e for e in events if e.kind == "final"]
            slot.needed = self._needed_input(slot, last_frame)
            outcome[slot].chunks.append((events, slot.needed))
            outcome[slot].audio_samples += (
                int(slot_valid) * SUBSAMPLING * self.frame_shift
            )

    def _deliver(
        self,
        work: list[tuple[AsrSlot, np.ndarray | None, bool, int]],
        outcome: dict[AsrSlot, _AsrOutcome],
        seconds: float,
    ) -> None:
        now = time.monotonic()
        self.metrics.asr_step_seconds.observe(seconds)
        audio = sum(o.audio_samples for o in outcome.values()) / self.model_rate
        self.metrics.asr_work(seconds, audio)
        for slot, *_ in work:
            slot.in_pass = False
            result = outcome[slot]
            slot.more = result.more
            if slot.closed:
                continue
            chunks = []
            for events, needed in result.chunks:
                arrived = slot.arrival_time(needed)
                if arrived is not None and needed > slot.decoded:
                    self.metrics.asr_latency.observe(now - arrived)
                slot.decoded = max(slot.decoded, needed)
                chunks.append(ChunkResult(events, needed / slot.input_rate, arrived))
            if result.done:
                slot.done = True
            if slot.backlog_seconds <= self.config.max_backlog_seconds / 2:
                slot.backlog_ok.set()
            slot.deliver(chunks, result.done, result.error)

    def _fail(self, work: list[Any], error: Exception) -> None:
        for slot, *_ in work:
            slot.in_pass = False
            if not slot.closed:
                slot.deliver([], True, error)


# --------------------------------------------------------------------- TTS


class TtsJob:
    """One synthesis request in the batcher.

    ``on_audio(samples)`` gets float32 chunks on the event loop, then
    ``on_done(error)`` once. ``can_produce()`` says whether the consumer can
    take more now (its unsent output is small).
    """

    def __init__(
        self,
        request: TtsRequest,
        synthesizer: SynthesizerBase,
        on_audio: Callable[[np.ndarray], None],
        on_done: Callable[[Exception | None], None],
        can_produce: Callable[[], bool] = lambda: True,
    ) -> None:
        self.request = request
        self.synthesizer = synthesizer
        self.on_audio = on_audio
        self.on_done = on_done
        self.can_produce = can_produce
        self.created = time.monotonic()
        self.produced = 0  # samples handed out
        self.cancelled = False
        self.finished = False
        self.in_pass = False
        # worker side
        self.pieces: Iterator[list[int]] | None = None
        self.chunks: Iterator[np.ndarray] | None = None  # Griffin-Lim fallback
        self.frames: np.ndarray | None = None  # (T, D) decoder input of the sentence
        self.length = 0
        self.position = 0
        self.decoder_state: Any = None
        self.vocoder_state: Any = None
        self.skip = 0
        self.sentences = 0

    def release(self) -> None:
        """Drop the callbacks and the states of a finished or cancelled job
        (the callbacks refer to the job's consumer and so to the job)."""
        self.on_audio = _ignore
        self.on_done = _ignore
        self.can_produce = _always
        self.pieces = self.chunks = None
        self.frames = self.decoder_state = self.vocoder_state = None

    def deadline(self) -> float:
        """When a real-time player would run out of this job's audio."""
        return self.created + self.produced / self.synthesizer.sample_rate


@dataclass
class _TtsOutcome:
    audio: list[np.ndarray] = field(default_factory=list)
    done: bool = False
    error: Exception | None = None


class TtsBatcher(_BatchLoop):
    name = "tts"
    urgent_lead = 2.0  # seconds of buffered audio under which a job is urgent

    def __init__(self, config: ServerConfig, metrics: Metrics) -> None:
        super().__init__(config, metrics)
        self.jobs: list[TtsJob] = []

    def submit(self, job: TtsJob) -> None:
        self.jobs.append(job)
        self.wake()

    def cancel(self, job: TtsJob) -> None:
        job.cancelled = True
        if not job.in_pass:
            self._drop(job)

    def _eligible(self) -> list[TtsJob]:
        return [
            j
            for j in self.jobs
            if not (j.cancelled or j.finished or j.in_pass) and j.can_produce()
        ]

    def _has_work(self) -> bool:
        return bool(self._eligible())

    def _collect(self) -> list[TtsJob]:
        jobs = self._eligible()
        if not jobs:
            return []
        now = time.monotonic()
        jobs.sort(key=lambda j: (j.produced > 0, j.deadline()))
        if jobs[0].produced == 0:
            # New requests: run them with the urgent ones only, so their
            # first audio is not held up by jobs with plenty buffered.
            jobs = [
                j
                for j in jobs
                if j.produced == 0 or j.deadline() < now + self.urgent_lead
            ]
        jobs = jobs[: self.config.max_tts_batch]
        for job in jobs:
            job.in_pass = True
        return jobs

    # -- worker thread --------------------------------------------------------

    def _next_sentence(self, job: TtsJob, out: _TtsOutcome) -> None:
        """Load the job's next sentence (or mark it done)."""
        synthesizer = job.synthesizer
        request = job.request
        if job.pieces is None:
            job.pieces = synthesizer.pieces(request.text)
        ids = next(job.pieces, None)
        if ids is None:
            out.done = True
            return
        if job.sentences:
            out.audio.append(
                np.zeros(
                    round(synthesizer.sentence_pause * synthesizer.sample_rate),
                    np.float32,
                )
            )
        job.sentences += 1
        job.frames = synthesizer.frames(ids, request.pace, request.pitch)  # (T, D)
        job.length = job.frames.shape[0]
        job.position = 0
        job.decoder_state = synthesizer.init_decoder_state(1)
        job.vocoder_state = synthesizer.init_vocoder_state(1)
        job.skip = synthesizer.delay_samples

    def _pass(self, jobs: list[TtsJob]) -> dict[TtsJob, _TtsOutcome]:
        outcome = {job: _TtsOutcome() for job in jobs}
        groups: dict[tuple[int, int], list[TtsJob]] = {}
        for job in jobs:
            out = outcome[job]
            try:
                if not job.synthesizer.has_vocoder:  # Griffin-Lim: whole sentences
                    if job.chunks is None:
                        r = job.request
                        job.chunks = job.synthesizer.stream(
                            r.text, r.pace, r.pitch, r.volume
                        )
                    chunk = next(job.chunks, None)
                    if chunk is None:
                        out.done = True
                    else:
                        out.audio.append(chunk)
                    continue
                if job.frames is None:
                    self._next_sentence(job, out)
                if job.frames is not None:
                    size = min(job.synthesizer.chunk_size, job.length - job.position)
                    groups.setdefault((id(job.synthesizer), size), []).append(job)
            except Exception as error:
                out.error = error
        for (_, size), group in groups.items():
            self._step(group, size, outcome)
        for job, out in outcome.items():
            volume = job.request.volume
            if volume != 1.0 and job.synthesizer.has_vocoder:
                out.audio = [np.clip(a * volume, -1.0, 1.0) for a in out.audio]
        return outcome

    def _step(
        self, group: list[TtsJob], size: int, outcome: dict[TtsJob, _TtsOutcome]
    ) -> None:
        """One decoder and one vocoder step of ``size`` frames for a group of
        jobs on one synthesizer."""
        synthesizer = group[0].synthesizer
        windows = []
        for job in group:
            assert job.frames is not None  # grouped jobs have a sentence loaded
            windows.append(job.frames[job.position : job.position + size])
        frames = np.stack(windows)  # (B, C', D)
        self.metrics.tts_batch.observe(len(group))
        mel, decoder_state = synthesizer.decode_chunk(
            frames, synthesizer.stack_states([j.decoder_state for j in group])
        )  # (B, C', M)
        audio, tail, vocoder_state = synthesizer.vocode_chunk(
            mel, synthesizer.stack_states([j.vocoder_state for j in group])
        )  # (B, C' * H), (B, delay_samples)
        for job, decoder, vocoder, samples, end in zip(
            group,
            synthesizer.unstack_states(decoder_state),
            synthesizer.unstack_states(vocoder_state),
            audio,
            tail,
            strict=True,
        ):
            out = outcome[job]
            job.decoder_state, job.vocoder_state = decoder, vocoder
            job.position += size
            cut = min(job.skip, samples.shape[0])
            job.skip -= cut
            if samples.shape[0] > cut:
                out.audio.append(samples[cut:])
            if job.position >= job.length:
                out.audio.append(end[job.skip :])
                job.frames = job.decoder_state = job.vocoder_state = None
                try:
                    self._next_sentence(job, out)
                except Exception as error:
                    out.error = error

    # -- event loop -------------------------------------------------------------

    def _deliver(
        self, jobs: list[TtsJob], outcome: dict[TtsJob, _TtsOutcome], seconds: float
    ) -> None:
        samples = 0
        rate = 1
        for job in jobs:
            job.in_pass = False
            out = outcome[job]
            audio = [a.astype(np.float32, copy=False) for a in out.audio if len(a)]
            rate = job.synthesizer.sample_rate
            samples += sum(len(a) for a in audio)
            if job.cancelled:
                self._drop(job)
                continue
            if audio:
                chunk = np.concatenate(audio) if len(audio) > 1 else audio[0]
                if job.produced == 0:
                    self.metrics.tts_first_audio.observe(time.monotonic() - job.created)
                job.produced += len(chunk)
                job.on_audio(chunk)
            if out.error is not None or out.done:
                job.finished = True
                job.on_done(out.error)
                self._drop(job)
        self.metrics.tts_work(seconds, samples / rate)

    def _drop(self, job: TtsJob) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        job.release()

    def _fail(self, jobs: list[TtsJob], error: Exception) -> None:
        for job in jobs:
            job.in_pass = False
            job.finished = True
            if not job.cancelled:
                job.on_done(error)
            self._drop(job)
