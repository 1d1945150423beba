"""What both synthesizers share, torch-free: text to symbol-id pieces, input
checks, sentence pauses and the public API.

``speech.tts.synthesizer.Synthesizer`` (PyTorch) and
``speech.onnx.tts.OnnxSynthesizer`` (ONNX Runtime) derive from
``SynthesizerBase``; each gives ``sample_rate``, ``num_symbols``,
``sentence_pause`` and two hooks on one piece of symbol ids: ``_utterance``
(its samples at once) and ``_stream_utterance`` (chunks that join to the
same samples). Text is split into sentences (``split_sentences``), each
normalised and phonemized lazily (``text_to_ids``); ids the model does not
know are dropped and pieces longer than ``MAX_SYMBOLS`` are cut between words.

This module imports numpy and the text front end only, never torch, so the
ONNX back end runs without it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np

from speech.text.normalize import split_sentences
from speech.text.phonemize import (
    PHONEME_SYMBOLS,
    WORD_BOUNDARY,
    phonemes_to_ids,
    text_to_ids,
)

__all__ = ["MAX_SYMBOLS", "SynthesizerBase"]

logger = logging.getLogger(__name__)

MAX_SYMBOLS = 600  # longer pieces are cut between words (bounds encoder memory)


class SynthesizerBase(ABC):
    """The text front end and public API over two per-utterance hooks."""

    num_symbols: int  # ids 1 .. num_symbols - 1 are the model's symbols
    sentence_pause: float  # seconds of silence between sentences

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

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
