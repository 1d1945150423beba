"""Text to speech: text front end + Incremental FastPitch + vocoder.

    >>> tts = load_synthesizer()                      # speech/models/tts
    >>> audio = tts.synthesize("Hello world.")        # float32 at tts.sample_rate
    >>> for chunk in tts.stream("A long text. ..."):  # first chunk after one
    ...     play(chunk)                               # decoder + vocoder chunk

Text is split into sentences (``split_sentences``), each normalised and
phonemized (``text_to_ids``; ``{...}`` spans are phonemes as given) and
synthesized in turn, with ``sentence_pause`` seconds of silence between
sentences. ``stream`` runs the encoder and predictors on one sentence, then
the decoder and the vocoder chunk by chunk (``chunk_size`` mel frames) with
fixed-size states, so memory stays bounded whatever the text length and the
first audio comes after the encoder, one decoder chunk and one vocoder chunk.
After the first chunk, ``chunks_per_step`` chunks are decoded and vocoded per
step (same samples, better throughput). ``synthesize`` decodes each sentence
at once with the same chunk mask and gives the same samples as joining
``stream``'s chunks.

Without vocoder weights the synthesizer falls back to Griffin-Lim (lower
quality); Griffin-Lim needs whole utterances, so ``stream`` then yields one
chunk per sentence.

Bad input: empty or blank text raises ``ValueError``; characters the front
end cannot speak (emoji, other scripts) are dropped with a logged warning, and
text with nothing speakable left gives an empty array (with a warning).

Controls: ``pace`` divides durations (2.0 = twice as fast), ``pitch_shift`` is
in semitones, ``volume`` is a gain on the waveform (then clipped to [-1, 1]).

Batched steps (``frames``, ``init_decoder_state``, ``init_vocoder_state``,
``stack_states``, ``unstack_states``, ``decode_chunk``, ``vocode_chunk``; see
``speech.tts.synthesizer_base``) are those of ``OnnxSynthesizer``: numpy
arrays in and out, states the ``DecoderState`` / ``VocoderState`` tuples of
tensors on ``device``. They need the vocoder (not the Griffin-Lim fallback).

Letters: B streams, T mel frames, C decoder chunk size, D model width, M mel
bins, H hop.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from speech.text.phonemize import PHONEME_SYMBOLS
from speech.tts import decoder as decoder_states
from speech.tts import vocoder as vocoder_states
from speech.tts.decoder import DecoderState
from speech.tts.fastpitch import FastPitch, load_tts
from speech.tts.synthesizer_base import MAX_SYMBOLS, SynthesizerBase
from speech.tts.vocoder import Vocoder, VocoderState, load_vocoder

__all__ = [
    "DEFAULT_TTS_DIR",
    "MAX_SYMBOLS",
    "Synthesizer",
    "default_synthesizer",
    "load_synthesizer",
]

logger = logging.getLogger(__name__)

DEFAULT_TTS_DIR = Path(__file__).resolve().parent.parent / "models" / "tts"
VOCODER_SUBDIR = "vocoder"


class Synthesizer(SynthesizerBase):
    """Streaming text-to-speech over a FastPitch model and a vocoder (the text
    front end and the public API are ``SynthesizerBase``'s)."""

    backend = "torch"

    def __init__(
        self,
        model: FastPitch,
        vocoder: Vocoder | None = None,
        device: str | torch.device = "cpu",
        sentence_pause: float = 0.3,
        griffin_lim_iterations: int = 32,
        chunks_per_step: int = 4,
    ) -> None:
        """
        Args:
            model: the acoustic model (its config holds the symbol table).
            vocoder: a streaming vocoder on the same mel definition; None
                selects the Griffin-Lim fallback.
            device: where both models run.
            sentence_pause: seconds of silence between sentences.
            griffin_lim_iterations: iterations of the fallback.
            chunks_per_step: decoder chunks decoded and vocoded together after
                the first one (which goes alone, for the earliest audio);
                more is faster, same samples.
        """
        config = model.config
        symbols = tuple(config.symbols)
        if symbols != PHONEME_SYMBOLS[: len(symbols)]:
            raise ValueError("the model's symbol table is not the text front end's")
        if vocoder is not None and vocoder.config.mel != config.mel:
            raise ValueError(
                f"vocoder mel {vocoder.config.mel} differs from the model's "
                f"{config.mel}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vocoder = None if vocoder is None else vocoder.to(self.device).eval()
        self.num_symbols = config.num_symbols
        self.sentence_pause = sentence_pause
        self.griffin_lim_iterations = griffin_lim_iterations
        self.chunks_per_step = self._checked_chunks_per_step(chunks_per_step)
        self.chunk_size = self.model.decoder.chunk_size
        self.delay_samples = 0 if self.vocoder is None else self.vocoder.delay_samples

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def has_vocoder(self) -> bool:
        return self.vocoder is not None

    # --- batched steps (also for cross-session batching, e.g. a server) ------

    @torch.inference_mode()
    def frames(
        self, ids: Sequence[int], pace: float = 1.0, pitch_shift: float = 0.0
    ) -> np.ndarray:
        """Symbol ids of one utterance -> (T, D) length-regulated decoder
        input (``FastPitch.prosody``)."""
        frames, length = self._prosody(ids, pace, pitch_shift)
        return frames[0, :length].cpu().numpy()

    def init_decoder_state(self, batch: int = 1) -> DecoderState:
        """Empty decoder state of ``batch`` streams."""
        return self.model.decoder.init_state(batch)

    def init_vocoder_state(self, batch: int = 1) -> VocoderState:
        """Vocoder state of ``batch`` new streams (silence before them)."""
        return self._streaming_vocoder().init_state(batch, self.device)

    @staticmethod
    @torch.inference_mode()
    def stack_states(
        states: list[DecoderState] | list[VocoderState],
    ) -> DecoderState | VocoderState:
        """Batch decoder (or vocoder) states of several streams."""
        if isinstance(states[0], DecoderState):
            return decoder_states.stack_states(states)  # type: ignore[arg-type]
        return vocoder_states.stack_states(states)  # type: ignore[arg-type]

    @staticmethod
    @torch.inference_mode()
    def unstack_states(
        state: DecoderState | VocoderState,
    ) -> list[DecoderState] | list[VocoderState]:
        """Split a batched state into one state per stream."""
        if isinstance(state, DecoderState):
            return decoder_states.unstack_states(state)
        return vocoder_states.unstack_states(state)

    @torch.inference_mode()
    def decode_chunk(
        self, frames: np.ndarray, state: DecoderState
    ) -> tuple[np.ndarray, DecoderState]:
        """(B, C', D) decoder input, C' <= chunk_size (less only at a
        stream's end) -> (B, C', M) log-mel and the new state."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        mel, state = self.model.decoder.forward_chunk(x, state)
        return mel.float().cpu().numpy(), state

    @torch.inference_mode()
    def vocode_chunk(
        self, mel: np.ndarray, state: VocoderState
    ) -> tuple[np.ndarray, np.ndarray, VocoderState]:
        """(B, T', M) log-mel -> (B, T' * H) stream samples, (B, n_fft / 2)
        tail (the samples a stream ending here still owes: ``Vocoder.flush``)
        and the new state. Drop the first ``delay_samples`` of a stream's
        samples."""
        vocoder = self._streaming_vocoder()
        x = torch.from_numpy(np.ascontiguousarray(mel)).to(self.device)
        audio, state = vocoder.forward_chunk(x.transpose(1, 2), state)
        tail = vocoder.flush(state)
        return audio.float().cpu().numpy(), tail.float().cpu().numpy(), state

    def _streaming_vocoder(self) -> Vocoder:
        if self.vocoder is None:
            raise RuntimeError(
                "no vocoder (Griffin-Lim fallback): the step API needs one; "
                "stream() synthesizes whole sentences instead"
            )
        return self.vocoder

    # --- audio ----------------------------------------------------------------

    def _prosody(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> tuple[Tensor, int]:
        symbols = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        prosody = self.model.prosody(symbols, pace=pace, pitch_shift=pitch_shift)
        return prosody.frames, int(prosody.frame_lengths[0])

    def _griffin_lim(self, mel: Tensor) -> np.ndarray:
        from speech.tts.griffin_lim import griffin_lim

        return griffin_lim(
            mel[0].T.float().cpu(),
            self.model.config.mel,
            n_iter=self.griffin_lim_iterations,
        )

    @torch.inference_mode()
    def _utterance(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> np.ndarray:
        frames, length = self._prosody(ids, pace, pitch_shift)
        lengths = torch.tensor([length], device=self.device)
        mel = self.model.decoder(frames, lengths)  # (1, T, M)
        if self.vocoder is None:
            return self._griffin_lim(mel)
        return self.vocoder(mel.transpose(1, 2))[0].float().cpu().numpy()

    @torch.inference_mode()
    def _stream_utterance(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> Iterator[np.ndarray]:
        frames, length = self._prosody(ids, pace, pitch_shift)
        decoder = self.model.decoder
        if self.vocoder is None:
            yield self._griffin_lim(
                decoder(frames, torch.tensor([length], device=self.device))
            )
            return
        decoder_state = decoder.init_state(1)
        vocoder_state = self.vocoder.init_state(1, self.device)
        skip = self.vocoder.delay_samples  # stream samples before source sample 0
        for span in self._decoder_spans(length):
            mel, decoder_state = decoder.forward_chunk(
                frames[:, span], decoder_state
            )  # (1, C', M)
            wave, vocoder_state = self.vocoder.forward_chunk(
                mel.transpose(1, 2), vocoder_state
            )
            wave = wave[0]
            cut = min(skip, wave.shape[0])
            skip -= cut
            if wave.shape[0] > cut:
                yield wave[cut:].float().cpu().numpy()
        tail = self.vocoder.flush(vocoder_state)[0]
        yield tail[skip:].float().cpu().numpy()


def load_synthesizer(
    directory: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    griffin_lim_fallback: bool = True,
    backend: Literal["torch", "onnx", "auto"] = "torch",
) -> Synthesizer:
    """A synthesizer from a voice folder: ``config.json`` + ``fastpitch.pt``,
    and the vocoder in ``vocoder/`` (Griffin-Lim when it is missing and
    ``griffin_lim_fallback``). ``None`` is the shipped voice.

    ``backend="onnx"`` returns ``speech.onnx.tts.OnnxSynthesizer`` (same API)
    on a folder written by ``speech export onnx`` (None: the shipped export);
    ``speech.load_synthesizer`` reaches it without importing torch.
    ``"auto"``: ONNX Runtime on the CPU where ``directory`` is such a folder
    (None: the shipped export), PyTorch otherwise
    (``speech.backends.voice_backend``, as ``speech synthesize`` does).
    """
    if backend == "auto":
        from speech.backends import voice_backend

        backend = voice_backend(directory, device)
    if backend == "onnx":
        from speech.onnx.tts import load_synthesizer as load_onnx

        return load_onnx(directory, str(device))  # type: ignore[return-value]
    if backend != "torch":
        raise ValueError(
            f"unknown backend {backend!r} (choose 'torch', 'onnx' or 'auto')"
        )
    folder = Path(directory) if directory is not None else DEFAULT_TTS_DIR
    model = load_tts(folder, device)
    vocoder_dir = folder / VOCODER_SUBDIR
    vocoder = None
    if (vocoder_dir / "config.json").is_file():
        vocoder = load_vocoder(vocoder_dir, device)
    elif griffin_lim_fallback:
        logger.warning("%s: no vocoder weights; using Griffin-Lim", folder)
    else:
        raise FileNotFoundError(f"{vocoder_dir}: no vocoder")
    return Synthesizer(model, vocoder, device)


@functools.cache
def default_synthesizer(device: str = "cpu") -> Synthesizer:
    """The shipped voice (``speech/models/tts``), loaded once per device."""
    return load_synthesizer(DEFAULT_TTS_DIR, device)
