"""Speech recognition for users: files of any length, batches of files, and
live streams, over either back end (PyTorch or ONNX Runtime).

This module imports numpy only (no torch), so the ONNX Runtime install path
can use it. Letters: T input frames, T' encoder frames, C chunk size,
M mel bins, V vocabulary.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import soxr

from speech.asr.config import (
    SUBSAMPLING,
    SUBSAMPLING_FIELD,
    AsrConfig,
    ChunkGeometry,
    check_edge_padding,
)
from speech.asr.decoding import (
    DEFAULT_ENDPOINT_RULES,
    DecodedSegment,
    Endpointer,
    EndpointRule,
    Hypothesis,
    StreamingCtcDecoder,
    TokenHit,
    segments_from_words,
    words_with_times,
)
from speech.asr.frontend import VTLN_RANGE, FbankConfig, StreamingFbank, fbank_numpy
from speech.asr.lm import (
    DEFAULT_LM_WEIGHT,
    DEFAULT_OOV_PENALTY,
    DEFAULT_WORD_BONUS,
    LmFusion,
    NgramLM,
    check_oov_penalty,
)
from speech.asr.tokenizer import Tokenizer
from speech.audio import audio_info, iter_audio_blocks, load_audio
from speech.errors import GeometryError, SpeechError
from speech.formats import Segment, Transcript, Word

__all__ = [
    "LM_FILE",
    "MAX_LONG_FORM_WINDOW",
    "Backend",
    "Recognizer",
    "RecognizerStream",
    "StreamEvent",
    "load_recognizer",
    "transcript_from_events",
]

logger = logging.getLogger(__name__)

LM_FILE = "lm.arpa.gz"  # a model folder's word LM, used by beam search
# The long-form path holds chunk + right context frames per layer call and
# attention memory grows with its square: 4,096 frames (5.5 min) is ~0.5 GB.
MAX_LONG_FORM_WINDOW = 4096

# Vocal tract length normalisation (``vtln="auto"``): the candidate warps of
# the filterbank (``FbankConfig.vtln_warp``) and how much of an input's start
# picks one, by the model's mean per-frame best log-probability (README,
# "Where rms lies": 6 warps cost 6 encoder passes over at most 60 s).
VTLN_WARPS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
VTLN_SECONDS = 60.0
# A warp ensemble (``vtln=(w1, w2, ...)``): the input is encoded under each
# warp and the posteriors averaged, for files, arrays and live streams alike
# (README, "Warp ensemble": the shipped model on unseen voices). Each warp is
# one more encoder pass; MAX_ENSEMBLE bounds the cost.
MAX_ENSEMBLE = 8
# Endpoint rescoring (``stream(rescore=True)``) keeps the open segment's
# features until its final: the endpoint rules must close every segment
# within this many seconds (the default rule 3 does at 20 s).
MAX_RESCORE_SECONDS = 60.0

VtlnSetting = float | Literal["auto"] | tuple[float, ...]


def mean_posterior(log_probs: Sequence[np.ndarray]) -> np.ndarray:
    """Log of the mean of the probabilities of several (T', V) log-probability
    arrays of one input (a warp ensemble's members) -> (T', V) float32."""
    if len(log_probs) == 1:
        return np.asarray(log_probs[0], dtype=np.float32)
    stack = np.stack([np.asarray(lp, dtype=np.float32) for lp in log_probs])
    top = stack.max(axis=0)
    mean = np.exp(stack - top).mean(axis=0)
    return (np.log(mean) + top).astype(np.float32)


def warp_confidence(log_probs: Any) -> float:
    """What ``vtln="auto"`` maximises over the warps: the mean over frames of
    the best CTC log-probability, (T, V) -> scalar."""
    return float(np.asarray(log_probs).max(-1).mean())


def parse_vtln(value: object) -> VtlnSetting | None:
    """A VTLN setting from a number, a sequence of numbers or text:
    ``"auto"``; a warp factor within ``VTLN_RANGE``; or a warp ensemble, two
    to ``MAX_ENSEMBLE`` distinct factors (``"0.85,1,1.15"`` or a sequence),
    sorted. None for anything else (callers word the error)."""
    if value == "auto":
        return "auto"
    if isinstance(value, str) and "," in value:
        value = value.split(",")
    if isinstance(value, list | tuple):
        factors = [_factor(v) for v in value]
        if any(f is None for f in factors) or not 2 <= len(value) <= MAX_ENSEMBLE:
            return None
        ensemble = tuple(sorted({f for f in factors if f is not None}))
        return ensemble if len(ensemble) == len(factors) else None
    return _factor(value)


def _factor(value: object) -> float | None:
    """One warp factor within ``VTLN_RANGE`` from a number or its text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        factor = float(value)
    except ValueError:
        return None
    low, high = VTLN_RANGE
    return factor if low <= factor <= high else None  # NaN fails too


def vtln_error(value: object) -> str:
    """The one-line error for a VTLN setting ``parse_vtln`` refused."""
    low, high = VTLN_RANGE
    return (
        f"vtln must be 'auto', a factor within {low:g}..{high:g}, or 2-"
        f"{MAX_ENSEMBLE} distinct such factors (a warp ensemble), got {value!r}"
    )


# Offline decoding resets the search at pauses so prefixes stay short on
# hours of audio; segments for output are made from word gaps afterwards.
OFFLINE_ENDPOINTS = (EndpointRule(True, 0.64, 0.0), EndpointRule(False, 5.0, 0.0))


class Backend(Protocol):
    """What the recognizer needs from a back end (see ``TorchBackend``)."""

    name: str
    tokenizer: Tokenizer

    @property
    def config(self) -> AsrConfig: ...

    def encode_list(
        self, features: list[np.ndarray], geometry: ChunkGeometry
    ) -> list[np.ndarray]: ...

    def pipeline(self, geometry: ChunkGeometry) -> Any: ...

    def init_state(self, batch: int, left_context: int) -> Any: ...

    def stack_states(self, states: list[Any]) -> Any: ...

    def unstack_states(self, state: Any) -> list[Any]: ...

    def step(
        self, windows: np.ndarray, state: Any, num_valid: np.ndarray
    ) -> tuple[np.ndarray, Any]: ...


def load_recognizer(
    model: str | os.PathLike[str] | None = None,
    backend: Literal["torch", "onnx", "auto"] = "torch",
    device: str = "cpu",
    lm: str | os.PathLike[str] | NgramLM | None = "auto",
    **options: Any,
) -> Recognizer:
    """A recognizer for a model folder (None: the shipped English model).

    ``backend="onnx"`` runs exported ONNX graphs with ONNX Runtime and never
    imports torch; ``model`` is then a folder made by ``speech export onnx``
    (None: the shipped model's export). ``"auto"`` takes ONNX Runtime on the
    CPU where ``model`` is such a folder (None: where the shipped export is
    current), PyTorch otherwise (``speech.backends.choose_backend``, as
    ``speech transcribe`` does).

    ``lm``: a word n-gram model (ARPA file or ``NgramLM``) that beam search
    fuses in; ``"auto"`` takes the model folder's ``lm.arpa.gz`` (or its
    parent's, for an ONNX export) if there is one; None: no LM. It is read
    when beam search first runs: greedy decoding (``beam_size`` 1, the
    default) never uses it.
    """
    if backend == "auto":
        from speech.backends import choose_backend

        backend = choose_backend(
            None if model is None else os.fspath(model), None, device, tts=False
        )
    if backend == "torch":
        from speech.asr.model import DEFAULT_MODEL_DIR
        from speech.asr.torch_backend import TorchBackend

        engine: Backend = TorchBackend(model, device)
        folders = [Path(model) if model is not None else DEFAULT_MODEL_DIR]
    elif backend == "onnx":
        from speech.onnx.asr import OnnxAsrBackend

        engine = OnnxAsrBackend(model, device)
        folders = [engine.folder, engine.folder.parent]
    else:
        raise ValueError(
            f"unknown backend {backend!r} (choose 'torch', 'onnx' or 'auto')"
        )
    if isinstance(lm, str) and lm == "auto":
        lm = next((f / LM_FILE for f in folders if (f / LM_FILE).is_file()), None)
    return Recognizer(engine, lm=lm, **options)


@dataclass(frozen=True)
class StreamEvent:
    """What a stream reports: a partial result of the open segment (it may
    still change) or a final one (an endpoint closed the segment)."""

    kind: Literal["partial", "final"]
    segment: Segment
    index: int  # segment number, from 0
    # a rescored final's streaming (first-pass) result, which it replaces
    first_pass: Segment | None = None


@dataclass(eq=False)
class RescoreJob:
    """A closed segment awaiting its second pass (endpoint rescoring):
    ``features``, its feature frames under each of the stream's warps, to be
    encoded with the offline geometry; ``start_frame``, its first encoder
    frame in the stream; ``first_pass``, the streaming pass's result."""

    features: list[np.ndarray]
    start_frame: int
    first_pass: Segment
    index: int
    seconds: float  # audio the second pass encodes
    final: StreamEvent | None = None  # once resolved


def bounds_segments(rules: Sequence[EndpointRule] | None) -> bool:
    """Whether the rules close every segment, speech or not, within
    ``MAX_RESCORE_SECONDS`` (what endpoint rescoring needs)."""
    return any(
        not rule.must_contain_speech
        and rule.min_trailing_silence == 0
        and rule.min_utterance_length <= MAX_RESCORE_SECONDS
        for rule in rules or ()
    )


class Recognizer:
    """Transcribes files, arrays and live audio.

    Args:
        backend: a ``TorchBackend`` or ``OnnxAsrBackend``.
        beam_size: 1 for greedy CTC decoding, more for prefix beam search.
        lm: a word n-gram language model (``NgramLM`` or an ARPA file) for
            beam search to fuse in; greedy decoding ignores it.
        lm_weight, word_bonus: the fusion's ``weight * ln P(word | history)
            + word_bonus`` per word (defaults tuned on the shipped model's
            dev set, see README).
        oov_penalty: fused score taken per letter of a word outside the LM's
            vocabulary (``LmFusion``).
        vtln: vocal tract length normalisation of the features: a warp
            factor (1: none; above 1 moves formants up, for a voice whose
            vocal tract is longer than the training voices'), or ``"auto"``:
            for each file or array, the factor of ``VTLN_WARPS`` under which
            the model is most confident on its first ``VTLN_SECONDS``
            (files and arrays; a live stream takes the fixed factor, 1 with
            ``"auto"``, or its own: ``stream(vtln=...)``); or a warp
            ensemble, a tuple of factors: every input (live streams too) is
            encoded under each and the posteriors averaged
            (``mean_posterior``), one encoder pass per factor.
        edge_padding: seconds of silence added before and after every input
            (files, arrays and live streams alike; default: the model's
            ``AsrConfig.edge_padding``). The part before is rounded to whole
            encoder frames; word times are given on the input's own clock.
    """

    def __init__(
        self,
        backend: Backend,
        beam_size: int = 1,
        lm: NgramLM | str | os.PathLike[str] | None = None,
        lm_weight: float = DEFAULT_LM_WEIGHT,
        word_bonus: float = DEFAULT_WORD_BONUS,
        oov_penalty: float = DEFAULT_OOV_PENALTY,
        vtln: VtlnSetting | Sequence[float] = 1.0,
        edge_padding: tuple[float, float] | None = None,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        setting = parse_vtln(vtln)
        if setting is None:
            raise ValueError(vtln_error(vtln))
        self.vtln: VtlnSetting = setting
        self.backend = backend
        self.beam_size = beam_size
        self.lm_source = lm
        self.lm_weight = lm_weight
        self.word_bonus = word_bonus
        self.oov_penalty = check_oov_penalty(oov_penalty)  # now, not at first use
        self._fusion: LmFusion | None = None
        config = backend.config
        self.fbank_config = FbankConfig(
            sample_rate=config.sample_rate,
            num_mel_bins=config.num_mel_bins,
            vtln_warp=setting if isinstance(setting, float) else 1.0,
        )
        before, after = check_edge_padding(
            config.edge_padding if edge_padding is None else edge_padding
        )
        # leading silence in whole encoder frames: word times move back by
        # exactly lead_frames
        self.lead_frames = round(before / config.frame_seconds)
        self.lead_samples = (
            self.lead_frames * SUBSAMPLING * self.fbank_config.frame_shift
        )
        self.tail_samples = round(after * config.sample_rate)

    @property
    def edge_padding(self) -> tuple[float, float]:
        """Seconds of silence added before and after each input."""
        return (
            self.lead_samples / self.sample_rate,
            self.tail_samples / self.sample_rate,
        )

    def pad(self, samples: np.ndarray) -> np.ndarray:
        """``samples`` (at the model's rate) with the edge silence added (none
        to an empty input, which stays empty)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not len(samples):
            return samples
        return np.pad(samples, (self.lead_samples, self.tail_samples))

    @property
    def config(self) -> AsrConfig:
        return self.backend.config

    @property
    def fusion(self) -> LmFusion | None:
        """The LM fusion beam search uses; the LM file is read on first use
        (shipped LM: about 2.7 s the first time, 0.11 s once its parsed
        arrays are cached, see ``speech.asr.lm`` and
        ``benchmarks/lm_load.py``)."""
        if self._fusion is None and self.lm_source is not None:
            lm = self.lm_source
            if not isinstance(lm, NgramLM):
                lm = NgramLM.load(lm)
            pieces = [
                self.tokenizer.id_to_piece(i) for i in range(self.config.vocab_size)
            ]
            self._fusion = LmFusion(
                lm, pieces, self.lm_weight, self.word_bonus, self.oov_penalty
            )
        return self._fusion

    @property
    def sample_rate(self) -> int:
        return self.backend.config.sample_rate

    @property
    def tokenizer(self) -> Tokenizer:
        return self.backend.tokenizer

    # ------------------------------------------------------------ decoding

    def _decoder(
        self, beam_size: int | None, rules: Sequence[EndpointRule] | None
    ) -> StreamingCtcDecoder:
        beam = self.beam_size if beam_size is None else beam_size
        endpointer = (
            None if rules is None else Endpointer(rules, self.config.frame_seconds)
        )
        if beam > 1:
            return StreamingCtcDecoder(
                "beam", beam_size=beam, endpointer=endpointer, fusion=self.fusion
            )
        return StreamingCtcDecoder("greedy", endpointer=endpointer)

    def _words(self, hits: Sequence[TokenHit], duration: float) -> list[Word]:
        """Timed words on the input's clock: the leading silence taken off,
        times clamped to the input (a word ending in the added silence ends
        with the input)."""
        words = words_with_times(
            hits, self.tokenizer, self.config.frame_seconds, -self.lead_frames
        )
        for i, word in enumerate(words):
            start = min(max(word.start, 0.0), duration)
            end = min(max(word.end, 0.0), duration)
            if (start, end) != (word.start, word.end):
                words[i] = replace(word, start=start, end=end)
        return words

    def _transcript(self, hits: list[TokenHit], duration: float) -> Transcript:
        words = self._words(hits, duration)
        segments = segments_from_words(words)
        return Transcript(
            text=" ".join(w.text for w in words), segments=segments, duration=duration
        )

    def decode(
        self, log_probs: np.ndarray, duration: float, beam_size: int | None = None
    ) -> Transcript:
        """(T', V) log-probabilities of one input (edge silence included, as
        ``pad`` adds it) -> transcript; ``duration``: the input's own."""
        return self._transcript(self._hits(log_probs, beam_size), duration)

    def _hits(self, log_probs: np.ndarray, beam_size: int | None) -> list[TokenHit]:
        """The tokens of offline decoding (the search reset at pauses)."""
        decoder = self._decoder(beam_size, OFFLINE_ENDPOINTS)
        hits = [h for seg in decoder.accept(log_probs) for h in seg.best.hits]
        last = decoder.finish()
        if last is not None:
            hits += last.best.hits
        return hits

    # ------------------------------------------------------------- offline

    def transcribe(
        self,
        audio: str | os.PathLike[str] | np.ndarray,
        geometry: ChunkGeometry | None = None,
        beam_size: int | None = None,
        block_seconds: float | None = None,
        vtln: VtlnSetting | Sequence[float] | None = None,
    ) -> Transcript:
        """Transcribe a file (any length: read in blocks, bounded memory) or
        an array of float32 samples at ``sample_rate``; ``vtln`` overrides
        the recognizer's VTLN setting for this call.

        ``block_seconds``: audio read and encoded per step; memory grows with
        it, not with the file. Default 60 s on the CPU and 600 s on a GPU,
        where small blocks leave the encoder bound by per-call overhead (on
        one H100, 600 s blocks encode 24 h in 2.2 s; README "Benchmarks")."""
        geometry = geometry or self.config.offline
        if block_seconds is None:
            device = str(getattr(self.backend, "device", "cpu"))
            block_seconds = 600.0 if device.startswith("cuda") else 60.0
        if isinstance(audio, np.ndarray):
            duration = len(audio) / self.sample_rate
            log_probs = self.log_probs([audio], geometry, vtln)[0]
            return self.decode(log_probs, duration, beam_size)
        window = geometry.chunk_size + geometry.right_context
        if window > MAX_LONG_FORM_WINDOW:
            seconds = window * self.config.frame_seconds
            raise GeometryError(
                f"{os.fspath(audio)}: chunk size + right context of {window} "
                f"frames ({seconds:.0f} s) is more than the long-form path takes "
                f"({MAX_LONG_FORM_WINDOW} frames, "
                f"{MAX_LONG_FORM_WINDOW * self.config.frame_seconds:.0f} s)"
            )
        pipeline = self.backend.pipeline(geometry)
        decoder = self._decoder(beam_size, OFFLINE_ENDPOINTS)
        hits: list[TokenHit] = []
        blocks: Iterator[np.ndarray] = iter_audio_blocks(
            audio, self.sample_rate, block_seconds
        )
        setting = self._setting(vtln)
        if setting == "auto":
            # the first VTLN_SECONDS (or the whole file) choose the warp, as
            # for an array; those blocks then go through like the rest
            # (edge silence included, as for an array: past VTLN_SECONDS the
            # trailing part is never read)
            head: list[np.ndarray] = []
            head_samples = 0
            for block in blocks:
                head.append(block)
                head_samples += len(block)
                if head_samples >= VTLN_SECONDS * self.sample_rate:
                    break
            start = np.concatenate(head) if head else np.zeros(0, np.float32)
            warps: tuple[float, ...] = (self.estimate_warp(self.pad(start)),)
            blocks = itertools.chain(head, blocks)
        else:
            warps = setting if isinstance(setting, tuple) else (setting,)
        # one front end and encoder pipeline per warp (an ensemble's members
        # see the same samples, so their outputs are frame for frame)
        fbanks = [
            StreamingFbank(replace(self.fbank_config, vtln_warp=w)) for w in warps
        ]
        pipelines = [pipeline] + [self.backend.pipeline(geometry) for _ in warps[1:]]
        members = list(zip(pipelines, fbanks, strict=True))

        def accept(log_probs: Sequence[np.ndarray]) -> None:
            for segment in decoder.accept(mean_posterior(log_probs)):
                hits.extend(segment.best.hits)

        def push(samples: np.ndarray) -> None:
            accept([p.push(f.accept(samples)) for p, f in members])

        push(np.zeros(self.lead_samples, np.float32))  # the edge silence
        samples = 0
        for block in blocks:
            samples += len(block)
            push(block)
        if samples == 0:
            from speech.errors import AudioError

            raise AudioError(f"{os.fspath(audio)}: no audio samples")
        push(np.zeros(self.tail_samples, np.float32))
        accept([p.flush() for p in pipelines])
        last = decoder.finish()
        if last is not None:
            hits += last.best.hits
        return self._transcript(hits, samples / self.sample_rate)

    def features(self, samples: np.ndarray, warp: float | None = None) -> np.ndarray:
        """(S,) float32 samples -> (T, M) log-mel features (``warp``: a VTLN
        factor instead of the recognizer's)."""
        cfg = self.fbank_config
        if warp is not None and warp != cfg.vtln_warp:
            cfg = replace(cfg, vtln_warp=warp)
        return fbank_numpy(np.asarray(samples, dtype=np.float32), cfg)

    def estimate_warp(self, samples: np.ndarray) -> float:
        """The factor of ``VTLN_WARPS`` under which the model is most
        confident (``warp_confidence``, offline geometry) on the first
        ``VTLN_SECONDS`` of ``samples``; 1 for less than a second of audio."""
        return self._estimate(samples)[0]

    def _estimate(self, samples: np.ndarray) -> tuple[float, Any | None]:
        """``estimate_warp``'s factor, and the offline log-probabilities of
        the whole input under it when the candidates covered all of it."""
        samples = np.asarray(samples, dtype=np.float32)
        head = samples[: int(VTLN_SECONDS * self.sample_rate)]
        if len(head) < self.sample_rate:
            return 1.0, None
        features = [self.features(head, warp) for warp in VTLN_WARPS]
        outputs = self.backend.encode_list(features, self.config.offline)
        best = int(np.argmax([warp_confidence(out) for out in outputs]))
        return VTLN_WARPS[best], outputs[best] if len(head) == len(samples) else None

    def log_probs(
        self,
        inputs: Sequence[np.ndarray],
        geometry: ChunkGeometry | None = None,
        vtln: VtlnSetting | Sequence[float] | None = None,
    ) -> list[np.ndarray]:
        """Float32 arrays at ``sample_rate`` -> their (T', V) CTC
        log-probabilities in one masked batch (default: offline geometry),
        the edge silence added and under the VTLN setting (the recognizer's,
        or ``vtln``): what ``decode`` takes, e.g. to decode one encoding
        several ways."""
        padded = [self.pad(x) for x in inputs]
        return self._encode(padded, geometry or self.config.offline, vtln)

    def _encode(
        self,
        inputs: Sequence[np.ndarray],
        geometry: ChunkGeometry,
        vtln: VtlnSetting | Sequence[float] | None = None,
    ) -> list[np.ndarray]:
        """Edge-padded inputs -> their (T', V) log-probabilities in one masked
        batch: under the fixed warp, each input's own ``"auto"`` warp, or the
        mean posterior of a warp ensemble's members."""
        setting = self._setting(vtln)
        if isinstance(setting, tuple):
            n = len(setting)
            features = [self.features(s, w) for s in inputs for w in setting]
            encoded = self.backend.encode_list(features, geometry)
            return [
                mean_posterior(encoded[i * n : (i + 1) * n]) for i in range(len(inputs))
            ]
        if setting == "auto":
            # each input's warp; its estimate encoded the whole input under it
            # with the offline geometry when the input fits VTLN_SECONDS
            chosen = [self._estimate(s) for s in inputs]
            if geometry != self.config.offline:
                chosen = [(warp, None) for warp, _ in chosen]
        else:
            chosen = [(setting, None)] * len(inputs)
        outputs = [log_probs for _, log_probs in chosen]
        todo = [i for i, log_probs in enumerate(outputs) if log_probs is None]
        if todo:
            features = [self.features(inputs[i], chosen[i][0]) for i in todo]
            encoded = self.backend.encode_list(features, geometry)
            for i, log_probs in zip(todo, encoded, strict=True):
                outputs[i] = log_probs
        return outputs

    def _setting(self, vtln: VtlnSetting | Sequence[float] | None) -> VtlnSetting:
        """A call's VTLN setting: its own, else the recognizer's."""
        if vtln is None:
            return self.vtln
        setting = parse_vtln(vtln)
        if setting is None:
            raise ValueError(vtln_error(vtln))
        return setting

    def transcribe_many(
        self,
        inputs: Iterable[str | os.PathLike[str]],
        geometry: ChunkGeometry | None = None,
        beam_size: int | None = None,
        max_batch_seconds: float = 1800.0,
        long_form_seconds: float = 900.0,
    ) -> Iterator[tuple[str, Transcript | SpeechError]]:
        """Transcribe many files with masked batching.

        Files are sorted by duration and packed into batches of at most
        ``max_batch_seconds`` of audio; a file longer than
        ``long_form_seconds`` is transcribed alone, block by block. Results
        come as ``(path, transcript)`` in completion order; a file that
        cannot be read gives ``(path, error)`` and the rest go on. A warp
        ensemble encodes each file once per warp, so its batches hold that
        many times less audio (the encoder's memory stays the same).
        """
        geometry = geometry or self.config.offline
        if isinstance(self.vtln, tuple):
            max_batch_seconds /= len(self.vtln)
        sized: list[tuple[float, str]] = []
        for item in inputs:
            path = os.fspath(item)
            try:
                duration = audio_info(path)[0]
            except SpeechError as error:
                yield path, error
                continue
            sized.append((duration, path))
        sized.sort()
        batch: list[tuple[float, str]] = []
        total = 0.0
        for duration, path in sized:
            if duration > long_form_seconds:
                try:
                    yield path, self.transcribe(path, geometry, beam_size)
                except SpeechError as error:
                    yield path, error
                continue
            if batch and total + duration > max_batch_seconds:
                yield from self._run_batch(batch, geometry, beam_size)
                batch, total = [], 0.0
            batch.append((duration, path))
            total += duration
        if batch:
            yield from self._run_batch(batch, geometry, beam_size)

    def _run_batch(
        self,
        batch: list[tuple[float, str]],
        geometry: ChunkGeometry,
        beam_size: int | None,
    ) -> Iterator[tuple[str, Transcript | SpeechError]]:
        # (path, edge-padded samples, the input's own duration)
        loaded: list[tuple[str, np.ndarray, float]] = []
        for _, path in batch:
            try:
                samples = load_audio(path, self.sample_rate)
            except SpeechError as error:
                yield path, error
                continue
            loaded.append((path, self.pad(samples), len(samples) / self.sample_rate))
        if not loaded:
            return
        outputs = self._encode([s for _, s, _ in loaded], geometry)
        for (path, _, duration), log_probs in zip(loaded, outputs, strict=True):
            yield path, self.decode(log_probs, duration, beam_size)

    # ------------------------------------------------------------ streaming

    def stream(
        self,
        geometry: ChunkGeometry | None = None,
        beam_size: int | None = None,
        endpoint_rules: Sequence[EndpointRule] | None = DEFAULT_ENDPOINT_RULES,
        input_sample_rate: int | None = None,
        vtln: float | Sequence[float] | None = None,
        rescore: bool | None = None,
    ) -> RecognizerStream:
        """A live stream (right context 0; endpoint rescoring of its finals
        by default, ``rescore``; see ``RecognizerStream``)."""
        return RecognizerStream(
            self, geometry, beam_size, endpoint_rules, input_sample_rate, vtln, rescore
        )


class RecognizerStream:
    """Live recognition of one audio stream.

    ``accept_waveform`` takes float32 samples in pieces of any size and
    returns events: a ``partial`` when the open segment's text changed and a
    ``final`` when an endpoint closed it; ``finish`` ends the input and
    returns the last final. Without rescoring (below) the final texts equal
    offline decoding of the same audio with the same chunk size and left
    context (right context 0).

    For cross-stream batching (the server), the three steps are public:
    ``feed`` buffers features, ``next_window`` gives the next chunk's input
    window, and ``consume`` decodes that chunk's log-probabilities; the
    caller runs ``backend.step`` on stacked ``state``s in between.

    ``vtln``: this stream's VTLN warp factor or warp ensemble (default: the
    recognizer's; a live stream cannot pick a factor by looking ahead, as
    ``"auto"`` does, and takes 1 then). An ensemble of W warps runs W rows
    per stream: ``next_window`` gives (W, 8C + 7, M) windows, ``state``
    holds W rows and ``consume`` takes the W rows' log-probabilities and
    decodes their mean posterior.

    ``rescore``: endpoint rescoring, a second pass (default: on where the
    endpoint rules allow it, as the default rules do). Partials come from the
    streaming pass as they are; when an endpoint closes a segment, its
    audio is encoded again with the offline geometry, which sees the whole
    segment, and decoded (same beam, same LM): the final is that result,
    and ``StreamEvent.first_pass`` holds the streaming one it replaces. A
    final then equals ``Recognizer.decode`` of the segment's frames encoded
    offline; it arrives later by that encoding's time. The segment's
    features are kept until its final, so the endpoint rules must close
    every segment within ``MAX_RESCORE_SECONDS`` (``bounds_segments``).
    """

    def __init__(
        self,
        recognizer: Recognizer,
        geometry: ChunkGeometry | None = None,
        beam_size: int | None = None,
        endpoint_rules: Sequence[EndpointRule] | None = DEFAULT_ENDPOINT_RULES,
        input_sample_rate: int | None = None,
        vtln: float | Sequence[float] | None = None,
        rescore: bool | None = None,
    ) -> None:
        geometry = geometry or recognizer.config.streaming
        if geometry.right_context != 0:
            raise ValueError(
                "streaming needs right_context 0 (the look-ahead of a right "
                "context grows with depth); use transcribe() for right context"
            )
        if rescore is None:
            rescore = bounds_segments(endpoint_rules)
        elif rescore and not bounds_segments(endpoint_rules):
            raise ValueError(
                "endpoint rescoring needs endpoint rules that close every "
                f"segment within {MAX_RESCORE_SECONDS:g} s (a rule with "
                "must_contain_speech False, min_trailing_silence 0 and "
                "min_utterance_length at most that, as the default rule 3)"
            )
        self.rescore = rescore
        self.beam_size = beam_size
        self.recognizer = recognizer
        self.geometry = geometry
        self.window = (geometry.chunk_size - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
        self.stride = geometry.chunk_size * SUBSAMPLING
        setting = recognizer._setting(vtln)
        if setting == "auto":
            setting = 1.0
        self.warps: tuple[float, ...] = (
            setting if isinstance(setting, tuple) else (float(setting),)
        )
        self.fbanks = [
            StreamingFbank(replace(recognizer.fbank_config, vtln_warp=w))
            for w in self.warps
        ]
        # (T, W, M): each frame under every warp
        self.features = np.zeros(
            (0, len(self.warps), recognizer.config.num_mel_bins), dtype=np.float32
        )
        self.state = recognizer.backend.init_state(
            len(self.warps), geometry.left_context
        )
        self.decoder = recognizer._decoder(beam_size, endpoint_rules)
        # rescoring: feature frames already windowed, from frame kept_from on
        # (the open segment's, and the next window's overlap stays in features)
        self.kept: list[np.ndarray] = []
        self.kept_from = 0
        self.windowed = 0  # feature frames removed from features so far
        # events in order, a final awaiting its second pass as its job
        self._outbox: list[StreamEvent | RescoreJob] = []
        self._untaken: list[RescoreJob] = []  # jobs not handed out yet
        self.resampler = None
        if input_sample_rate and input_sample_rate != recognizer.sample_rate:
            self.resampler = soxr.ResampleStream(
                input_sample_rate, recognizer.sample_rate, 1, dtype="float32"
            )
        self.input_rate = input_sample_rate
        self.segment_index = 0
        self.samples_in = 0
        self.input_ended = False
        self.finished = False
        self._last_partial = ""
        self._add_frames(np.zeros(recognizer.lead_samples, np.float32))

    @property
    def frame_seconds(self) -> float:
        return self.recognizer.config.frame_seconds

    def feed(self, samples: np.ndarray, last: bool = False) -> None:
        """Buffer float32 samples (at the input rate); ``last``: they end the
        input (``end_input``)."""
        if self.input_ended:
            raise RuntimeError("the stream's input has ended")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_in += len(samples)
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples)
        self._add_frames(samples)
        if last:  # flushes the resampler
            self.end_input()

    @property
    def rows(self) -> int:
        """Encoder rows this stream runs per chunk: 1, or a warp ensemble's W."""
        return len(self.warps)

    def _add_frames(self, samples: np.ndarray) -> None:
        """Features of samples at the model's rate."""
        frames = np.stack([f.accept(samples) for f in self.fbanks], axis=1)
        if len(frames):
            self.features = np.concatenate([self.features, frames])

    def end_input(self) -> None:
        """No more audio: flush the resampler and add the trailing edge
        silence (``Recognizer.edge_padding``); ``next_window(final=True)``
        then gives what is left. ``finish`` calls it if need be."""
        if self.input_ended:
            return
        if self.resampler is not None:
            self._add_frames(
                self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            )
            self.resampler = None
        if self.samples_in:
            self._add_frames(np.zeros(self.recognizer.tail_samples, np.float32))
        else:  # no audio at all: nothing to decode, not even the edge silence
            self.features = self.features[:0]
        self.input_ended = True

    def next_window(self, final: bool = False) -> tuple[np.ndarray, int] | None:
        """The next chunk's (rows, 8C + 7, M) feature windows and its valid
        encoder frames, or None when more audio is needed. With ``final`` a
        last, zero-padded partial window is returned when one is left."""
        if len(self.features) >= self.window:
            window = self.features[: self.window]
            self._advance(self.stride)
            valid = self.geometry.chunk_size
        elif final and len(self.features) >= SUBSAMPLING_FIELD:
            valid = (len(self.features) - SUBSAMPLING_FIELD) // SUBSAMPLING + 1
            window = np.zeros((self.window, *self.features.shape[1:]), dtype=np.float32)
            window[: len(self.features)] = self.features
            self._advance(len(self.features))
        else:
            return None
        return np.ascontiguousarray(window.transpose(1, 0, 2)), valid

    def _advance(self, frames: int) -> None:
        """Drop ``frames`` windowed feature frames (kept when rescoring)."""
        if self.rescore:
            self.kept.append(self.features[:frames])
        self.features = self.features[frames:]
        self.windowed += frames

    def consume(self, log_probs: np.ndarray, defer: bool = False) -> list[StreamEvent]:
        """Decode one chunk's (rows, valid frames, V) log-probabilities (their
        mean posterior for a warp ensemble).

        ``defer`` (rescoring only): leave the second pass of segments closed
        here to the caller (``take_rescore_jobs``, ``resolve``, as the
        server batches them across streams); the events from such a final
        on are held back until it is resolved, so they keep their order."""
        for closed in self.decoder.accept(mean_posterior(list(log_probs))):
            self._outbox.append(self._final(closed))
            self._last_partial = ""
        if self.rescore:  # the open segment's frames on
            self._forget(self.decoder.segment_start * SUBSAMPLING)
        partial = self._segment(self.decoder.partial)
        if partial.text != self._last_partial:
            self._last_partial = partial.text
            self._outbox.append(StreamEvent("partial", partial, self.segment_index))
        if not defer:
            self._rescore_now()
        return self._ready()

    def _final(self, closed: DecodedSegment) -> StreamEvent | RescoreJob:
        """A closed segment's final, or with rescoring the job that makes it."""
        streamed = self._segment(closed.best)
        index = self.segment_index
        self.segment_index += 1
        if not self.rescore:
            return StreamEvent("final", streamed, index)
        start = closed.start_frame * SUBSAMPLING
        end = (closed.end_frame - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
        frames = np.concatenate([*self.kept, self.features])
        span = frames[start - self.kept_from : end - self.kept_from]
        rows = [np.ascontiguousarray(span[:, w]) for w in range(self.rows)]
        shift = self.recognizer.fbank_config.frame_shift
        seconds = len(span) * shift / self.recognizer.sample_rate
        job = RescoreJob(rows, closed.start_frame, streamed, index, seconds)
        self._untaken.append(job)
        return job

    def _forget(self, frame: int) -> None:
        """Drop kept feature frames before ``frame``."""
        frame = min(max(frame, self.kept_from), self.windowed)
        if frame > self.kept_from:
            kept = np.concatenate(self.kept)
            self.kept = [kept[frame - self.kept_from :]]
            self.kept_from = frame

    @property
    def rescoring(self) -> bool:
        """Whether a final awaits its second pass (events are held back)."""
        return any(isinstance(item, RescoreJob) for item in self._outbox)

    def take_rescore_jobs(self) -> list[RescoreJob]:
        """The second passes not handed out yet: encode each job's
        ``features`` with the offline geometry (``backend.encode_list``,
        any batch) and pass the outputs to ``resolve``."""
        jobs, self._untaken = self._untaken, []
        return jobs

    def resolve(
        self, job: RescoreJob, log_probs: Sequence[np.ndarray]
    ) -> list[StreamEvent]:
        """A job's (T', V) log-probabilities, one per row -> the events now
        free to go (its final and what was held back behind it)."""
        self._resolve(job, log_probs)
        return self._ready()

    def _resolve(self, job: RescoreJob, log_probs: Sequence[np.ndarray]) -> None:
        hits = self.recognizer._hits(mean_posterior(log_probs), self.beam_size)
        shift = job.start_frame
        moved = tuple(
            h._replace(start_frame=h.start_frame + shift, end_frame=h.end_frame + shift)
            for h in hits
        )
        segment = self._segment(Hypothesis(tuple(h.token for h in moved), 0.0, moved))
        job.final = StreamEvent("final", segment, job.index, job.first_pass)

    def _rescore_now(self) -> None:
        jobs = self.take_rescore_jobs()
        if jobs:
            encoded = self.recognizer.backend.encode_list(
                [rows for job in jobs for rows in job.features],
                self.recognizer.config.offline,
            )
            for i, job in enumerate(jobs):
                self._resolve(job, encoded[i * self.rows : (i + 1) * self.rows])

    def _ready(self) -> list[StreamEvent]:
        """Pop the events that no unresolved final holds back."""
        ready: list[StreamEvent] = []
        while self._outbox:
            item = self._outbox[0]
            if isinstance(item, RescoreJob):
                if item.final is None:
                    break
                item = item.final
            ready.append(item)
            self._outbox.pop(0)
        return ready

    def _segment(self, hypothesis: Hypothesis) -> Segment:
        # times within the audio received so far
        rate = self.input_rate or self.recognizer.sample_rate
        words: list[Word] = self.recognizer._words(
            hypothesis.hits, self.samples_in / rate
        )
        if not words:
            return Segment(text="", start=0.0, end=0.0, words=[])
        return Segment(
            text=" ".join(w.text for w in words),
            start=words[0].start,
            end=words[-1].end,
            words=words,
        )

    def _run(self, final: bool, defer: bool = False) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        backend = self.recognizer.backend
        while (item := self.next_window(final)) is not None:
            windows, valid = item
            log_probs, self.state = backend.step(
                windows, self.state, np.full(self.rows, valid, dtype=np.int64)
            )
            events += self.consume(log_probs[:, :valid], defer)
        return events

    def accept_waveform(self, samples: np.ndarray) -> list[StreamEvent]:
        if self.finished:
            raise RuntimeError("the stream is finished")
        self.feed(samples)
        return self._run(final=False)

    def finish(self, defer: bool = False) -> list[StreamEvent]:
        """End of input: decode what is left and close the last segment; its
        finals (``defer``: those not held back by a second pass left to the
        caller, see ``consume``; ``rescoring`` says when none is left)."""
        if self.finished:
            return []
        self.end_input()
        events = self._run(final=True, defer=defer)
        closed = self.decoder.finish()
        if closed is not None:
            self._outbox.append(self._final(closed))
        self.kept = []
        self.finished = True
        if not defer:
            self._rescore_now()
        events += self._ready()
        return [e for e in events if e.kind == "final"]


def transcript_from_events(
    events: Iterable[StreamEvent], duration: float
) -> Transcript:
    """Join a stream's final events into a transcript."""
    segments = [e.segment for e in events if e.kind == "final" and e.segment.text]
    return Transcript(
        text=" ".join(s.text for s in segments), segments=segments, duration=duration
    )
