"""The synthesizer on ONNX Runtime (numpy in, numpy out; no torch).

``OnnxSynthesizer`` offers the API of ``speech.tts.synthesizer.Synthesizer``
(``synthesize``, ``stream``, the ``_ids``/``_phonemes`` variants,
``sample_rate``, pace / pitch_shift / volume) over the graphs of
``export.tts_graphs``: the text encoder and predictors once per sentence,
then the decoder and the vocoder with fixed-size states. The decoder runs
several chunks per call where the export has ``tts_decoder_chunks.onnx``
(the chunk layout computed in numpy, as the PyTorch decoder does): a whole
sentence in one call for ``synthesize``, ``chunks_per_step`` chunks per call
after the first for ``stream``; one chunk goes through
``tts_decoder_step.onnx`` (and every chunk does for older exports).
``synthesize`` gives the samples of joining ``stream``'s chunks, and both
equal the PyTorch synthesizer's to float32 rounding.

Letters: N symbols, T mel frames, C decoder chunk size, D model width,
M mel bins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import numpy as np

from speech.core.layout import GRAPH_LAYOUT_FIELDS, chunk_layout_arrays
from speech.onnx import Graph, find_model_folder
from speech.text.phonemize import PHONEME_SYMBOLS
from speech.tts.synthesizer_base import MAX_SYMBOLS, SynthesizerBase

__all__ = [
    "MAX_SYMBOLS",
    "OnnxSynthesizer",
    "decoder_chunks_layout",
    "load_synthesizer",
]

ENCODER_FILE = "tts_encoder.onnx"
CHUNKS_FILE = "tts_decoder_chunks.onnx"


def decoder_chunks_layout(
    frames: int,
    processed: np.ndarray,
    chunk_size: int,
    past_context: int,
    conv_context: int,
) -> dict[str, np.ndarray]:
    """The layout inputs of ``tts_decoder_chunks.onnx`` (``GRAPH_LAYOUT_FIELDS``)
    for B streams that each add ``frames`` frames after ``processed`` (B,):
    causal chunks (R = 0) over caches of L keys and K1 convolution inputs."""
    processed = np.asarray(processed, np.int64)
    counts = np.full(processed.shape[0], frames, np.int64)
    arrays = chunk_layout_arrays(
        counts,
        counts,
        processed,
        chunk_size,
        past_context,
        0,
        conv_context,
        past_context,
        conv_context,
    )
    return {name: arrays[name] for name in GRAPH_LAYOUT_FIELDS}


class OnnxSynthesizer(SynthesizerBase):
    """Streaming text-to-speech on ONNX Runtime (the text front end and the
    public API are ``SynthesizerBase``'s, shared with the PyTorch synthesizer).

    Args:
        voice: a folder written by ``speech export onnx`` (or its ``tts/``
            subfolder); None: the shipped export (``speech/models/onnx``).
        device: "cpu", "cuda" or "cuda:N" (CUDA needs onnxruntime-gpu).
        sentence_pause: seconds of silence between sentences.
        threads: intra-op threads per graph.
        chunks_per_step: decoder chunks vocoded together after the first
            chunk (which goes alone, for early audio), as in the PyTorch
            synthesizer: fewer, larger vocoder calls.
    """

    backend = "onnx"

    def __init__(
        self,
        voice: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        sentence_pause: float = 0.3,
        threads: int | None = None,
        chunks_per_step: int = 4,
    ) -> None:
        folder = find_model_folder(voice, "tts", ENCODER_FILE)
        vocoder_file = folder / "tts_vocoder_step.onnx"
        if not vocoder_file.is_file():
            raise FileNotFoundError(
                f"{vocoder_file}: missing (the ONNX synthesizer needs the vocoder)"
            )
        self.folder = folder
        self.encoder = Graph(folder / ENCODER_FILE, device, threads)
        self.decoder = Graph(folder / "tts_decoder_step.onnx", device, threads)
        chunks_file = folder / CHUNKS_FILE
        # older exports lack it: every chunk then goes through the step graph
        self.decoder_chunks = (
            Graph(chunks_file, device, threads) if chunks_file.is_file() else None
        )
        self.vocoder = Graph(vocoder_file, device, threads)
        meta = self.encoder.metadata
        if meta.get("model_type") != "incremental_fastpitch":
            raise ValueError(f"{folder}: not an exported FastPitch voice")
        self.symbols = tuple(self.encoder.meta_json("symbols"))
        if self.symbols != PHONEME_SYMBOLS[: len(self.symbols)]:
            raise ValueError("the model's symbol table is not the text front end's")
        self.num_symbols = max(len(self.symbols), 1)
        self._sample_rate = int(meta["sample_rate"])
        self.chunk_size = int(meta["chunk_size"])
        self.num_layers = int(meta["num_layers"])
        self.dim = int(meta["d_model"])
        self.past_context = int(meta["past_context"])
        self.conv_context = int(meta["conv_context"])
        vocoder_config = self.vocoder.meta_json("config")
        self.delay_samples = int(self.vocoder.metadata["delay_samples"])
        mel = vocoder_config["mel"]
        self.vocoder_state_shapes = {
            "mel_cache": (mel["n_mels"], vocoder_config["input_kernel_size"] - 1),
            "conv_cache": (
                vocoder_config["num_layers"],
                vocoder_config["kernel_size"] - 1,
                vocoder_config["dim"],
            ),
            "overlap": (mel["n_fft"] - mel["hop_length"],),
        }
        self.silence = math.log(mel["log_floor"])
        if int(self.vocoder.metadata["sample_rate"]) != self._sample_rate:
            raise ValueError("the vocoder's sample rate differs from the model's")
        self.sentence_pause = sentence_pause
        self.chunks_per_step = self._checked_chunks_per_step(chunks_per_step)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    # --- batched steps (also for cross-session batching, e.g. a server) ------

    def frames(
        self, ids: Sequence[int], pace: float = 1.0, pitch_shift: float = 0.0
    ) -> np.ndarray:
        """Symbol ids of one utterance -> (T, D) length-regulated decoder
        input (text encoder and predictors, then ``np.repeat``)."""
        out = self.encoder.run(
            ids=np.array([list(ids)], dtype=np.int64),
            lengths=np.array([len(ids)], dtype=np.int64),
            pace=np.array([pace], dtype=np.float32),
            pitch_shift=np.array([pitch_shift], dtype=np.float32),
        )
        return np.repeat(out["encodings"][0], out["durations"][0], axis=0)

    def init_decoder_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Empty decoder state of ``batch`` streams (graph input names)."""
        state = {"processed": np.zeros(batch, np.int64)}
        cache = (batch, self.past_context, self.dim)
        for i in range(self.num_layers):
            state[f"cache_k_{i}"] = np.zeros(cache, np.float32)
            state[f"cache_v_{i}"] = np.zeros(cache, np.float32)
            state[f"cache_conv_{i}"] = np.zeros(
                (batch, self.conv_context, self.dim), np.float32
            )
        return state

    def init_vocoder_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Vocoder state of ``batch`` new streams (silence before them)."""
        shapes = self.vocoder_state_shapes
        return {
            "mel_cache": np.full(
                (batch, *shapes["mel_cache"]), self.silence, np.float32
            ),
            "conv_cache": np.zeros((batch, *shapes["conv_cache"]), np.float32),
            "overlap": np.zeros((batch, *shapes["overlap"]), np.float32),
            "frames": np.zeros(batch, np.int64),
        }

    @staticmethod
    def stack_states(states: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Batch decoder (or vocoder) states of several streams."""
        return {k: np.concatenate([s[k] for s in states]) for k in states[0]}

    @staticmethod
    def unstack_states(state: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Split a batched state into one state per stream."""
        batch = next(iter(state.values())).shape[0]
        return [{k: v[b : b + 1] for k, v in state.items()} for b in range(batch)]

    def decode_chunk(
        self, frames: np.ndarray, state: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(B, C', D) decoder input -> (B, C', M) log-mel and the new state.

        C' <= chunk_size (less only at a stream's end) runs the step graph.
        A larger C' decodes several chunks at once (a whole number of chunks
        unless the stream ends in this call), with the same result as one
        call per chunk: through the multi-chunk graph, or chunk by chunk
        through the step graph when the export has none.
        """
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        size = frames.shape[1]
        if size <= self.chunk_size:
            out = self.decoder.run(frames=frames, **state)
            return out["mel"], {name: out[f"new_{name}"] for name in state}
        if self.decoder_chunks is None:
            mels = []
            for start in range(0, size, self.chunk_size):
                mel, state = self.decode_chunk(
                    frames[:, start : start + self.chunk_size], state
                )
                mels.append(mel)
            return np.concatenate(mels, 1), state
        return self._decode_chunks(frames, state)

    def _decode_chunks(
        self, frames: np.ndarray, state: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Several chunks per stream in one call of the multi-chunk graph."""
        assert self.decoder_chunks is not None
        batch, size, dim = frames.shape
        layout = decoder_chunks_layout(
            size,
            state["processed"],
            self.chunk_size,
            self.past_context,
            self.conv_context,
        )
        caches = {name: value for name, value in state.items() if name != "processed"}
        out = self.decoder_chunks.run(
            x=frames.reshape(batch * size, dim),
            **caches,
            **layout,
        )
        new_state = {"processed": state["processed"] + size}
        new_state.update({name: out[f"new_{name}"] for name in caches})
        return out["mel"].reshape(batch, size, -1), new_state

    def vocode_chunk(
        self, mel: np.ndarray, state: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(B, T', M) log-mel -> (B, T' * hop) stream samples, (B, n_fft / 2)
        tail (the samples a stream ending here still owes) and the new
        state. Drop the first ``delay_samples`` of a stream's samples."""
        out = self.vocoder.run(
            mel=np.ascontiguousarray(mel.transpose(0, 2, 1)), **state
        )
        return out["audio"], out["tail"], {n: out[f"new_{n}"] for n in state}

    def _utterance(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> np.ndarray:
        frames = self.frames(ids, pace, pitch_shift)
        mel, _ = self.decode_chunk(frames[None], self.init_decoder_state())
        audio, tail, _ = self.vocode_chunk(mel, self.init_vocoder_state())
        return np.concatenate([audio[0], tail[0]])[self.delay_samples :]

    def _stream_utterance(
        self, ids: Sequence[int], pace: float, pitch_shift: float
    ) -> Iterator[np.ndarray]:
        state = self.init_vocoder_state()
        skip = self.delay_samples  # stream samples before source sample 0
        tail = np.zeros((1, 0), np.float32)
        frames = self.frames(ids, pace, pitch_shift)
        decoder = self.init_decoder_state()
        for span in self._decoder_spans(frames.shape[0]):
            mel, decoder = self.decode_chunk(frames[None, span], decoder)
            audio, tail, state = self.vocode_chunk(mel, state)
            cut = min(skip, audio.shape[1])
            skip -= cut
            if audio.shape[1] > cut:
                yield audio[0, cut:]
        yield tail[0, skip:]


def load_synthesizer(
    directory: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    **options: object,
) -> OnnxSynthesizer:
    """An ONNX synthesizer from an export folder (None: the shipped one);
    ``options`` go to ``OnnxSynthesizer`` (sentence_pause, threads);
    ``griffin_lim_fallback`` is accepted for the PyTorch loader's signature
    and ignored (an ONNX voice always has its vocoder)."""
    options.pop("griffin_lim_fallback", None)
    return OnnxSynthesizer(directory, device, **options)  # type: ignore[arg-type]
