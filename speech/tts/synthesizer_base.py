"""What both synthesizers share, torch-free: text to symbol-id pieces, input
checks, sentence pauses, the public API and the declarations of the batched
step API.

``speech.tts.synthesizer.Synthesizer`` (PyTorch) and
``speech.onnx.tts.OnnxSynthesizer`` (ONNX Runtime) derive from
``SynthesizerBase``; each gives ``sample_rate``, ``num_symbols``,
``sentence_pause`` and two hooks on one piece of symbol ids: ``_utterance``
(its samples at once) and ``_stream_utterance`` (chunks that join to the
same samples). Text is split into sentences (``split_sentences``), each
normalised and phonemized lazily (``text_to_ids``); ids the model does not
know are dropped and pieces longer than ``MAX_SYMBOLS`` are cut between words.

Step API (for batching streams of many sessions, e.g. ``server.batching``),
the same on both back ends: numpy arrays in and out, states opaque (made,
stacked and split by the synthesizer that uses them)::

    frames = tts.frames(ids, pace, pitch_shift)             # (T, D)
    decoder, vocoder = tts.init_decoder_state(), tts.init_vocoder_state()
    skip = tts.delay_samples                                # centre padding
    for start in range(0, len(frames), tts.chunk_size):
        mel, decoder = tts.decode_chunk(
            frames[None, start : start + tts.chunk_size], decoder
        )                                                   # (1, C', M)
        audio, tail, vocoder = tts.vocode_chunk(mel, vocoder)
        ...  # audio[0], less its first ``skip`` samples overall
    ...  # then tail[0] of the last call, less what is left of ``skip``

gives ``_stream_utterance``'s samples; ``stack_states`` / ``unstack_states``
run several streams (each at its own position) in one call. Voices without
a streaming vocoder (``has_vocoder`` False: the PyTorch Griffin-Lim
fallback) stream whole sentences through ``stream`` instead.

Letters: B streams, T mel frames, C decoder chunk size (C' <= C frames in a
call), D model width, M mel bins, H hop.

This module imports numpy and the text front end only, never torch, so the
ONNX back end runs without it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np

from speech.text.normalize import split_sentences
from speech.text.phonemize import (
    PHONEME_SYMBOLS,
    WORD_BOUNDARY,
    phonemes_to_ids,
    text_to_ids,
)

__all__ = ["MAX_SYMBOLS", "StepState", "SynthesizerBase"]

logger = logging.getLogger(__name__)

MAX_SYMBOLS = 600  # longer pieces are cut between words (bounds encoder memory)

# A decoder or vocoder state of the step API: fixed-size, only the batch
# dimension B varies; its type is the back end's (torch NamedTuples, or dicts
# of numpy arrays named as the ONNX graphs' inputs).
StepState: TypeAlias = Any


class SynthesizerBase(ABC):
    """The text front end and public API over two per-utterance hooks."""

    backend: str  # "torch" or "onnx"
    num_symbols: int  # ids 1 .. num_symbols - 1 are the model's symbols
    sentence_pause: float  # seconds of silence between sentences
    chunk_size: int  # C: mel frames per decoder step
    chunks_per_step: int  # decoder chunks per streaming step after the first
    delay_samples: int  # stream samples before source sample 0 (vocoder)

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

    @property
    def has_vocoder(self) -> bool:
        """Whether the step API covers this voice (a streaming vocoder);
        False for a fallback that needs whole utterances (use ``stream``)."""
        return True

    # --- batched steps (declared here, one implementation per back end) -------

    @abstractmethod
    def frames(
        self, ids: Sequence[int], pace: float = 1.0, pitch_shift: float = 0.0
    ) -> np.ndarray:
        """Symbol ids of one utterance -> (T, D) length-regulated decoder
        input (text encoder and predictors, then the length regulation)."""

    @abstractmethod
    def init_decoder_state(self, batch: int = 1) -> StepState:
        """Empty decoder state of ``batch`` streams."""

    @abstractmethod
    def init_vocoder_state(self, batch: int = 1) -> StepState:
        """Vocoder state of ``batch`` new streams (silence before them)."""

    @staticmethod
    @abstractmethod
    def stack_states(states: list[StepState]) -> StepState:
        """Batch decoder (or vocoder) states of several streams."""

    @staticmethod
    @abstractmethod
    def unstack_states(state: StepState) -> list[StepState]:
        """Split a batched state into one state (of batch 1) per stream."""

    @abstractmethod
    def decode_chunk(
        self, frames: np.ndarray, state: StepState
    ) -> tuple[np.ndarray, StepState]:
        """(B, C', D) float32 decoder input, C' <= C (less only at a stream's
        end) -> (B, C', M) float32 log-mel and the new state."""

    @abstractmethod
    def vocode_chunk(
        self, mel: np.ndarray, state: StepState
    ) -> tuple[np.ndarray, np.ndarray, StepState]:
        """(B, T', M) log-mel -> (B, T' * H) float32 stream samples, the
        (B, delay_samples) tail (the samples a stream ending here still owes)
        and the new state. A stream's first ``delay_samples`` samples are
        padding, to drop."""

    @abstractmethod
    def _utterance(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> np.ndarray:
        """One piece of symbol ids -> its samples (1-D)."""

    @abstractmethod
    def _stream_utterance(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> Iterator[np.ndarray]:
        """One piece of symbol ids -> chunks that join to ``_utterance``'s."""

    @staticmethod
    def _checked_chunks_per_step(value: int) -> int:
        if value < 1:
            raise ValueError(f"chunks_per_step must be >= 1, got {value}")
        return value

    def _decoder_spans(self, length: int) -> Iterator[slice]:
        """The decoder input frames of each streaming step of an utterance of
        ``length`` frames: the first chunk alone (the earliest audio), then
        ``chunks_per_step`` chunks per step."""
        start, size = 0, self.chunk_size
        while start < length:
            yield slice(start, start + size)
            start += size
            size = self.chunk_size * self.chunks_per_step

    # --- text -----------------------------------------------------------------

    def pieces(self, text: str) -> Iterator[list[int]]:
        """Text -> the symbol-id pieces synthesized in turn (a sentence, or a
        cut of a long one), with a pause between them. Checks the text now
        (errors raise at the call), phonemizes lazily."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text is empty")
        return self._sentence_ids(text)

    def _sentence_ids(self, text: str) -> Iterator[list[int]]:
        spoken = False
        for sentence in split_sentences(text):
            for piece in self._id_pieces(text_to_ids(sentence)):
                spoken = True
                yield piece
        if not spoken:
            logger.warning("nothing speakable in the text; no audio")

    def _id_pieces(self, ids: Sequence[int]) -> list[list[int]]:
        """Keep ids the model knows; cut runs longer than MAX_SYMBOLS."""
        kept = [i for i in ids if 0 < i < self.num_symbols]
        if len(kept) < len(ids):
            logger.warning(
                "dropped %d symbol id(s) unknown to the model", len(ids) - len(kept)
            )
        boundary = PHONEME_SYMBOLS.index(WORD_BOUNDARY)
        pieces = []
        while len(kept) > MAX_SYMBOLS:
            cut = max(
                (
                    j
                    for j in range(MAX_SYMBOLS // 2, MAX_SYMBOLS)
                    if kept[j] == boundary
                ),
                default=MAX_SYMBOLS,
            )
            pieces.append(kept[:cut])
            kept = kept[cut:]
        if kept:
            pieces.append(kept)
        return pieces

    def _checked_ids(self, ids: Sequence[int]) -> Iterator[list[int]]:
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("no symbol ids")
        return iter(self._id_pieces(ids))

    # --- audio ----------------------------------------------------------------

    @staticmethod
    def _check_controls(pace: float, volume: float) -> None:
        if not pace > 0:
            raise ValueError(f"pace must be positive, got {pace}")
        if not volume >= 0:
            raise ValueError(f"volume must be non-negative, got {volume}")

    @staticmethod
    def _finish(samples: np.ndarray, volume: float) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if volume != 1.0:
            samples = np.clip(samples * volume, -1.0, 1.0)
        return samples.astype(np.float32, copy=False)

    def _pause(self) -> np.ndarray:
        return np.zeros(int(round(self.sentence_pause * self.sample_rate)), np.float32)

    def _join(
        self,
        pieces: Iterator[list[int]],
        pace: float,
        pitch_shift: float,
        volume: float,
    ) -> np.ndarray:
        self._check_controls(pace, volume)
        parts: list[np.ndarray] = []
        for ids in pieces:
            if parts:
                parts.append(self._pause())
            parts.append(self._finish(self._utterance(ids, pace, pitch_shift), volume))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _chunks(
        self,
        pieces: Iterator[list[int]],
        pace: float,
        pitch_shift: float,
        volume: float,
    ) -> Iterator[np.ndarray]:
        first = True
        for ids in pieces:
            if not first:
                yield self._pause()
            first = False
            for wave in self._stream_utterance(ids, pace, pitch_shift):
                yield self._finish(wave, volume)

    # --- public API -----------------------------------------------------------

    def synthesize(
        self,
        text: str,
        pace: float = 1.0,
        pitch_shift: float = 0.0,
        volume: float = 1.0,
    ) -> np.ndarray:
        """Whole text -> float32 samples at ``sample_rate`` (1-D)."""
        return self._join(self.pieces(text), pace, pitch_shift, volume)

    def synthesize_ids(
        self,
        ids: Sequence[int],
        pace: float = 1.0,
        pitch_shift: float = 0.0,
        volume: float = 1.0,
    ) -> np.ndarray:
        """Symbol ids (of ``PHONEME_SYMBOLS``) -> samples, as one utterance."""
        return self._join(self._checked_ids(ids), pace, pitch_shift, volume)

    def synthesize_phonemes(
        self,
        phonemes: str,
        pace: float = 1.0,
        pitch_shift: float = 0.0,
        volume: float = 1.0,
    ) -> np.ndarray:
        """IPA phoneme string (the front end's inventory) -> samples."""
        return self.synthesize_ids(phonemes_to_ids(phonemes), pace, pitch_shift, volume)

    def stream(
        self,
        text: str,
        pace: float = 1.0,
        pitch_shift: float = 0.0,
        volume: float = 1.0,
    ) -> Iterator[np.ndarray]:
        """Whole text -> float32 chunks; ``np.concatenate`` of them equals
        ``synthesize(text, ...)``. Input errors raise here, not on ``next``."""
        self._check_controls(pace, volume)
        return self._chunks(self.pieces(text), pace, pitch_shift, volume)

    def stream_ids(
        self,
        ids: Sequence[int],
        pace: float = 1.0,
        pitch_shift: float = 0.0,
        volume: float = 1.0,
    ) -> Iterator[np.ndarray]:
        """Symbol ids -> float32 chunks (as ``stream``)."""
        self._check_controls(pace, volume)
        return self._chunks(self._checked_ids(ids), pace, pitch_shift, volume)
