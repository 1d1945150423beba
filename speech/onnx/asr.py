"""The recognizer's ONNX Runtime back end (numpy in, numpy out; no torch).

It mirrors ``speech.asr.torch_backend.TorchBackend`` over the graphs of
``export.asr_graphs``: the streaming step graph for live streams at the
exported chunk size and left context, and the subsampling, per-layer and CTC
graphs, driven by the same numpy chunk layouts as the PyTorch model
(``speech.core.layout``), for masked batching, long-form pipelining and
streaming at any other geometry.

Letters: B streams, T input frames, T' encoder frames, C chunk size,
L left context, K2 conv context, D model width, M mel bins, V vocabulary.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from speech.asr.config import AsrConfig, ChunkGeometry
from speech.asr.layer_pipeline import (
    LayerPipeline,
    subsampled_frames,
    subsampling_windows,
)
from speech.asr.tokenizer import Tokenizer
from speech.core.layout import GRAPH_LAYOUT_FIELDS, chunk_layout_arrays
from speech.onnx import Graph, find_model_folder

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_TYPE",
    "OnnxAsrBackend",
    "OnnxEncoderState",
    "stack_states",
    "unstack_states",
]

MODEL_TYPE = "chunkformer_ctc"
STEP_FILE = "asr_step.onnx"


class OnnxEncoderState(NamedTuple):
    """Fixed-size streaming state of B streams, shaped like the PyTorch
    ``EncoderState`` (only B varies)."""

    keys: np.ndarray  # (num_layers, B, L, D) float32
    values: np.ndarray  # (num_layers, B, L, D)
    conv: np.ndarray  # (num_layers, B, K2, D)
    processed: np.ndarray  # (B,) int64 encoder frames processed so far


def stack_states(states: list[OnnxEncoderState]) -> OnnxEncoderState:
    """Batch the states of several streams (B = sum of their batches)."""
    return OnnxEncoderState(
        keys=np.concatenate([s.keys for s in states], axis=1),
        values=np.concatenate([s.values for s in states], axis=1),
        conv=np.concatenate([s.conv for s in states], axis=1),
        processed=np.concatenate([s.processed for s in states]),
    )


def unstack_states(state: OnnxEncoderState) -> list[OnnxEncoderState]:
    """Split a batched state into one state per stream (B = 1 each)."""
    return [
        OnnxEncoderState(
            keys=state.keys[:, i : i + 1],
            values=state.values[:, i : i + 1],
            conv=state.conv[:, i : i + 1],
            processed=state.processed[i : i + 1],
        )
        for i in range(state.processed.shape[0])
    ]


@functools.cache
def _metadata_message() -> type:
    """A protobuf message that reads only an ONNX ``ModelProto``'s
    ``metadata_props`` (field 14, key/value string pairs) and skips the rest
    of the file: the ``onnx`` package would do it too, but importing it
    takes about 0.5 s, half of `speech transcribe` of a short file."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="speech_onnx_metadata.proto", package="speech_onnx", syntax="proto2"
    )
    entry = file.message_type.add(name="Entry")
    for name, number in (("key", 1), ("value", 2)):
        entry.field.add(
            name=name, number=number, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL
        )
    file.message_type.add(name="Model").field.add(
        name="metadata_props",
        number=14,
        type=field.TYPE_MESSAGE,
        type_name=".speech_onnx.Entry",
        label=field.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    model = pool.FindMessageTypeByName("speech_onnx.Model")
    return message_factory.GetMessageClass(model)


def export_digest(folder: Path) -> str | None:
    """The digest of the weights an ASR export in ``folder`` was made from
    (its step graph's metadata; the graph's weights are in other files)."""
    model = _metadata_message().FromString((folder / STEP_FILE).read_bytes())
    return {p.key: p.value for p in model.metadata_props}.get("weights_sha256")


def is_stale(exported_from: str | None) -> bool:
    """Whether an export of the shipped model was made from other weights
    than the shipped model's now (False when there are none to compare)."""
    from speech.asr.weights import DEFAULT_MODEL_DIR, weights_digest

    try:
        current = weights_digest(DEFAULT_MODEL_DIR)
    except OSError:
        return False  # no shipped weights to compare with
    return exported_from != current


def warn_if_stale(folder: Path, exported_from: str | None) -> bool:
    """Warn (and return True) when the shipped export in ``folder`` was made
    from other weights than the shipped model's: after an update that
    brought new weights, until ``./install.sh`` or ``speech export onnx``
    exports them again."""
    from speech.asr.weights import DEFAULT_MODEL_DIR

    if not is_stale(exported_from):
        return False
    logger.warning(
        "%s was exported from other weights than %s: its transcripts will "
        "differ from the PyTorch back end's until it is exported again "
        "(./install.sh, or speech export onnx --out %s --int8)",
        folder,
        DEFAULT_MODEL_DIR,
        folder.parent,
    )
    return True


class OnnxAsrBackend:
    """ONNX Runtime back end of ``speech.asr.recognizer.Recognizer``.

    Args:
        model: a folder written by ``speech export onnx`` (or its ``asr/``
            subfolder); None: the shipped export (``speech/models/onnx``).
        device: "cpu", "cuda" or "cuda:N" (CUDA needs onnxruntime-gpu).
        threads: intra-op threads per graph (default ``default_threads()``).
    """

    name = "onnx"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.folder = find_model_folder(model, "asr", STEP_FILE)
        self.device = device
        self.threads = threads
        self.step_graph = Graph(self.folder / STEP_FILE, device, threads, spin=True)
        meta = self.step_graph.metadata
        if meta.get("model_type") != MODEL_TYPE:
            raise ValueError(
                f"{self.folder / STEP_FILE}: model_type {meta.get('model_type')!r}, "
                f"expected {MODEL_TYPE!r}"
            )
        if model is None:
            warn_if_stale(self.folder, meta.get("weights_sha256"))
        self._config = AsrConfig.from_dict(self.step_graph.meta_json("config"))
        self.tokenizer = Tokenizer.from_bytes(base64.b64decode(meta["tokenizer"]))
        self.conv_context = int(meta["conv_context"])
        self.step_geometry = ChunkGeometry(
            int(meta["chunk_size"]), int(meta["left_context"]), 0
        )
        self.step_window = int(meta["window"])
        self._graphs: dict[str, Graph] = {}

    @property
    def config(self) -> AsrConfig:
        return self._config

    def _graph(self, name: str) -> Graph:
        """Offline graphs are loaded on first use (streaming needs none)."""
        if name not in self._graphs:
            path = self.folder / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: missing (re-export the model with 'speech export onnx')"
                )
            self._graphs[name] = Graph(path, self.device, self.threads)
        return self._graphs[name]

    # ------------------------------------------------------------ pieces

    def subsample(self, features: np.ndarray, max_frames: int = 1024) -> np.ndarray:
        """(T, M) raw features -> (T', D) encoder-rate frames, in windows of
        at most ``max_frames`` output frames (as ``ChunkFormerEncoder``)."""
        count = subsampled_frames(features.shape[0])
        if count == 0:
            return np.zeros((0, self.config.d_model), np.float32)
        graph = self._graph("asr_subsampling.onnx")
        pieces = []
        for frames, window in subsampling_windows(count, max_frames):
            encoded = graph.run(features=np.ascontiguousarray(features[window][None]))
            pieces.append(encoded["encoded"][0, :frames])
        return np.concatenate(pieces)

    def layer(
        self,
        index: int,
        x: np.ndarray,
        layout: dict[str, np.ndarray],
        cache_k: np.ndarray,
        cache_v: np.ndarray,
        cache_conv: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One Conformer layer over a flat layout whose cache rows are L and
        K2 (see ``ConformerLayer.forward``): output (Q, D) and new caches."""
        out = self._graph(f"asr_layer_{index}.onnx").run(
            x=x,
            cache_k=cache_k,
            cache_v=cache_v,
            cache_conv=cache_conv,
            **{name: layout[name] for name in GRAPH_LAYOUT_FIELDS},
        )
        return (
            out["output"],
            out["new_cache_k"],
            out["new_cache_v"],
            out["new_cache_conv"],
        )

    def ctc(self, x: np.ndarray) -> np.ndarray:
        """(F, D) -> (F, V) log-probabilities."""
        if x.shape[0] == 0:
            return np.zeros((0, self.config.vocab_size), np.float32)
        return self._graph("asr_ctc.onnx").run(x=x)["log_probs"]

    def layout(
        self,
        num_frames: np.ndarray,
        num_queries: np.ndarray,
        processed: np.ndarray,
        geometry: ChunkGeometry,
    ) -> dict[str, np.ndarray]:
        return chunk_layout_arrays(
            num_frames,
            num_queries,
            processed,
            geometry.chunk_size,
            geometry.left_context,
            geometry.right_context,
            self.conv_context,
            geometry.left_context,
            self.conv_context,
        )

    # ------------------------------------------------------------ Backend

    def encode_list(
        self, features: list[np.ndarray], geometry: ChunkGeometry
    ) -> list[np.ndarray]:
        """Masked batching: (T_b, M) features -> (T'_b, V) log-probabilities
        (``AsrModel.forward_list``: no padding, all chunks in one batch)."""
        if not features:
            return []
        encoded = [self.subsample(np.asarray(f, np.float32)) for f in features]
        lengths = np.array([e.shape[0] for e in encoded], dtype=np.int64)
        x = np.concatenate(encoded)
        if x.shape[0] > 0:
            if geometry.chunk_size > lengths.max():
                # one chunk holds every utterance (full context): a chunk of
                # the longest one computes the same without the padding
                geometry = ChunkGeometry(int(lengths.max()), 0, 0)
            layout = self.layout(lengths, lengths, np.zeros_like(lengths), geometry)
            batch, d = len(features), self.config.d_model
            keys = np.zeros((batch, geometry.left_context, d), np.float32)
            conv = np.zeros((batch, self.conv_context, d), np.float32)
            for i in range(self.config.num_layers):
                x = self.layer(i, x, layout, keys, keys, conv)[0]
        log_probs = self.ctc(x)
        return np.split(log_probs, np.cumsum(lengths)[:-1])

    def pipeline(self, geometry: ChunkGeometry) -> OnnxPipeline:
        """A long-form encoder: ``push((T, M)) -> (T'_ready, V)``, ``flush()``."""
        return OnnxPipeline(self, geometry)

    def init_state(self, batch: int, left_context: int) -> OnnxEncoderState:
        n, d = self.config.num_layers, self.config.d_model
        return OnnxEncoderState(
            keys=np.zeros((n, batch, left_context, d), np.float32),
            values=np.zeros((n, batch, left_context, d), np.float32),
            conv=np.zeros((n, batch, self.conv_context, d), np.float32),
            processed=np.zeros(batch, np.int64),
        )

    stack_states = staticmethod(stack_states)
    unstack_states = staticmethod(unstack_states)

    def step(
        self, windows: np.ndarray, state: OnnxEncoderState, num_valid: np.ndarray
    ) -> tuple[np.ndarray, OnnxEncoderState]:
        """Streaming step: (B, 8C + 7, M) windows -> (B, C, V) log-probs.

        The step graph serves its exported C and L; other geometries run the
        per-layer graphs on a chunk layout (same numbers, a little slower).
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        num_valid = np.asarray(num_valid, dtype=np.int64)
        if (
            windows.shape[1] == self.step_window
            and state.keys.shape[2] == self.step_geometry.left_context
        ):
            return self._fused_step(windows, state, num_valid)
        return self._layered_step(windows, state, num_valid)

    def _fused_step(
        self, windows: np.ndarray, state: OnnxEncoderState, num_valid: np.ndarray
    ) -> tuple[np.ndarray, OnnxEncoderState]:
        feeds = {
            "features": windows,
            "num_valid": num_valid,
            "processed": np.asarray(state.processed, np.int64),
        }
        for i in range(self.config.num_layers):
            feeds[f"cache_k_{i}"] = np.ascontiguousarray(state.keys[i])
            feeds[f"cache_v_{i}"] = np.ascontiguousarray(state.values[i])
            feeds[f"cache_conv_{i}"] = np.ascontiguousarray(state.conv[i])
        out = self.step_graph.run(**feeds)
        n = self.config.num_layers
        new_state = OnnxEncoderState(
            keys=np.stack([out[f"new_cache_k_{i}"] for i in range(n)]),
            values=np.stack([out[f"new_cache_v_{i}"] for i in range(n)]),
            conv=np.stack([out[f"new_cache_conv_{i}"] for i in range(n)]),
            processed=out["new_processed"],
        )
        return out["log_probs"], new_state

    def _layered_step(
        self, windows: np.ndarray, state: OnnxEncoderState, num_valid: np.ndarray
    ) -> tuple[np.ndarray, OnnxEncoderState]:
        batch = windows.shape[0]
        chunk = subsampled_frames(windows.shape[1])
        geometry = ChunkGeometry(chunk, state.keys.shape[2], 0)
        encoded = self._graph("asr_subsampling.onnx").run(features=windows)
        frames = encoded["encoded"][:, :chunk]  # (B, C, D)
        x = np.concatenate([frames[b, : num_valid[b]] for b in range(batch)])
        processed = np.asarray(state.processed, np.int64)
        layout = self.layout(num_valid, num_valid, processed, geometry)
        keys, values, conv = [], [], []
        for i in range(self.config.num_layers):
            x, k, v, c = self.layer(
                i, x, layout, state.keys[i], state.values[i], state.conv[i]
            )
            keys.append(k)
            values.append(v)
            conv.append(c)
        flat = self.ctc(x)  # (sum of num_valid, V)
        log_probs = np.zeros((batch, chunk, flat.shape[1]), np.float32)
        starts = np.cumsum(num_valid) - num_valid
        for b in range(batch):
            log_probs[b, : num_valid[b]] = flat[starts[b] : starts[b] + num_valid[b]]
        new_state = OnnxEncoderState(
            keys=np.stack(keys),
            values=np.stack(values),
            conv=np.stack(conv),
            processed=processed + num_valid,
        )
        return log_probs, new_state


class OnnxPipeline(LayerPipeline[np.ndarray]):
    """Layer-pipelined long-form encoding (``speech.asr.longform.
    EncoderPipeline`` on ONNX Runtime; the control is ``LayerPipeline``'s):
    every layer keeps its unprocessed input frames and fixed-size caches;
    output equals masked batching over the whole input."""

    def __init__(
        self,
        backend: OnnxAsrBackend,
        geometry: ChunkGeometry,
        max_subsampling_frames: int = 1024,
    ) -> None:
        self.backend = backend
        config = backend.config
        n, d = config.num_layers, config.d_model
        super().__init__(
            geometry,
            n,
            features=np.zeros((0, config.num_mel_bins), np.float32),
            frames=np.zeros((0, d), np.float32),
            conv_context=backend.conv_context,
            max_subsampling_frames=max_subsampling_frames,
        )
        self.keys = [
            np.zeros((1, geometry.left_context, d), np.float32) for _ in range(n)
        ]
        self.values = [k.copy() for k in self.keys]
        self.conv = [
            np.zeros((1, backend.conv_context, d), np.float32) for _ in range(n)
        ]

    def _concat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)

    def _normalize(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, np.float32)

    def _subsample(self, features: np.ndarray, count: int) -> np.ndarray:
        return self.backend.subsample(features, self.max_subsampling_frames)

    def _build_layout(
        self, num_frames: int, num_queries: int, processed: int
    ) -> dict[str, np.ndarray]:
        return self.backend.layout(
            np.array([num_frames]),
            np.array([num_queries]),
            np.array([processed]),
            self.geometry,
        )

    def _run_layer(self, index: int, x: np.ndarray, num_queries: int) -> np.ndarray:
        layout = self._layout(index, x.shape[0], num_queries)
        out, self.keys[index], self.values[index], self.conv[index] = (
            self.backend.layer(
                index, x, layout, self.keys[index], self.values[index], self.conv[index]
            )
        )
        return out

    def _ctc(self, x: np.ndarray) -> np.ndarray:
        return self.backend.ctc(x)
