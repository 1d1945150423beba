"""ONNX graphs of the ChunkFormer recognizer: thin wrappers that flatten the
streaming state into named inputs and outputs.

Letters: B streams, T input frames, T' encoder frames, F flat frames, N chunks,
C chunk size, W key window (L + C + R), K2 conv context, Q processed frames,
D model width, M mel bins, V vocabulary.

Graphs (all inputs float32 unless said; B, T, F, N, ... are dynamic axes):

``asr_step.onnx`` streaming step with R = 0 (``AsrModel.forward_chunk``),
    C and L fixed (metadata ``chunk_size``, ``left_context``):
    in:  features (B, 8C + 7, M) raw log-mel, num_valid (B,) int64,
         processed (B,) int64, cache_k_i, cache_v_i (B, L, D),
         cache_conv_i (B, K2, D) for i < num_layers
    out: log_probs (B, C, V), new_processed (B,), new_cache_k_i, new_cache_v_i,
         new_cache_conv_i
``asr_subsampling.onnx`` CMVN + 8x subsampling:
    in: features (B, T, M); out: encoded (B, T'', D) (T'' >= T', slice it)
``asr_layer_i.onnx`` one Conformer layer over a flat chunk layout
    (``ConformerLayer.forward``), any C, L, R:
    in:  x (F, D), cache_k, cache_v (B, L, D), cache_conv (B, K2, D), and the
         ``speech.core.layout.chunk_layout_arrays`` arrays made with
         ``key_cache_rows = L`` and ``conv_cache_rows = K2``
    out: output (Q, D), new_cache_k, new_cache_v (B, L, D),
         new_cache_conv (B, K2, D)
``asr_ctc.onnx`` CTC head: in x (F, D); out log_probs (F, V)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

import speech
from speech.asr.config import SUBSAMPLING, SUBSAMPLING_FIELD
from speech.asr.encoder import EncoderState
from speech.asr.frontend import FbankConfig
from speech.asr.model import AsrModel
from speech.core import ChunkLayout, relative_position_table
from speech.core.layout import GRAPH_LAYOUT_FIELDS

__all__ = [
    "CtcGraph",
    "LayerGraph",
    "StepGraph",
    "SubsamplingGraph",
    "asr_graphs",
    "asr_metadata",
    "cache_names",
]

EXPORT_FORMAT = 1


def cache_names(num_layers: int) -> list[str]:
    """Per-layer cache input names of the step graph, layer-major."""
    return [
        f"{kind}_{i}"
        for i in range(num_layers)
        for kind in ("cache_k", "cache_v", "cache_conv")
    ]


class StepGraph(nn.Module):
    """``AsrModel.forward_chunk`` with the state as per-layer tensors."""

    def __init__(self, model: AsrModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, features: Tensor, num_valid: Tensor, processed: Tensor, *caches: Tensor
    ) -> tuple[Tensor, ...]:
        state = EncoderState(
            keys=torch.stack(caches[0::3]),
            values=torch.stack(caches[1::3]),
            conv=torch.stack(caches[2::3]),
            processed=processed,
        )
        log_probs, new = self.model.forward_chunk(features, state, num_valid)
        flat = []
        for i in range(new.keys.shape[0]):
            flat += [new.keys[i], new.values[i], new.conv[i]]
        return (log_probs, new.processed, *flat)


class SubsamplingGraph(nn.Module):
    """CMVN and the convolutional subsampling of a padded batch."""

    def __init__(self, model: AsrModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor) -> Tensor:
        return self.model.encoder.subsampling(self.model.normalize(features))


class LayerGraph(nn.Module):
    """``ConformerLayer.forward`` with the chunk layout as inputs.

    The geometry comes from the input shapes: C from ``query_index``, L from
    the key cache rows, R from the key window, so one graph serves masked
    batching and the long-form pipeline at any chunk size and contexts.
    """

    def __init__(self, model: AsrModel, index: int) -> None:
        super().__init__()
        self.layer = model.encoder.layers[index]
        self.dim = model.config.d_model

    def forward(
        self,
        x: Tensor,
        cache_k: Tensor,
        cache_v: Tensor,
        cache_conv: Tensor,
        *layout_arrays: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        arrays = dict(zip(GRAPH_LAYOUT_FIELDS, layout_arrays, strict=True))
        chunk = arrays["query_index"].shape[1]
        left = cache_k.shape[1]
        right = arrays["key_index"].shape[1] - left - chunk
        layout = ChunkLayout(
            **arrays,
            query_valid=torch.zeros(0, dtype=torch.bool),  # unused by the layer
            num_queries=torch.zeros(0, dtype=torch.long),  # unused by the layer
            chunk_size=chunk,
            left_context=left,
            right_context=right,
        )
        positions = relative_position_table(chunk, left, right, self.dim)
        return self.layer(x, layout, positions, cache_k, cache_v, cache_conv)


class CtcGraph(nn.Module):
    def __init__(self, model: AsrModel) -> None:
        super().__init__()
        self.ctc = model.ctc

    def forward(self, x: Tensor) -> Tensor:
        return self.ctc(x).float().log_softmax(-1)


def asr_metadata(model: AsrModel) -> dict[str, object]:
    """What a runtime needs besides the graphs: audio front end, geometry,
    vocabulary and the full config (the same for every ASR graph)."""
    config = model.config
    streaming = config.streaming
    pieces: list[str] = []
    if model.tokenizer is not None:
        pieces = [model.tokenizer.id_to_piece(i) for i in range(config.vocab_size)]
    return {
        "model_type": "chunkformer_ctc",
        "version": speech.__version__,
        "export_format": EXPORT_FORMAT,
        "sample_rate": config.sample_rate,
        "num_mel_bins": config.num_mel_bins,
        "frame_length_ms": 25.0,
        "frame_shift_ms": 10.0,
        "hop": config.sample_rate // 100,
        "subsampling": SUBSAMPLING,
        "subsampling_field": SUBSAMPLING_FIELD,
        "chunk_size": streaming.chunk_size,
        "left_context": streaming.left_context,
        "right_context": 0,
        "window": (streaming.chunk_size - 1) * SUBSAMPLING + SUBSAMPLING_FIELD,
        "num_layers": config.num_layers,
        "d_model": config.d_model,
        "conv_context": config.conv_kernel // 2,
        "vocab_size": config.vocab_size,
        "blank_id": 0,
        "vocabulary": json.dumps(pieces, ensure_ascii=False),
        "fbank": json.dumps(
            asdict(FbankConfig(config.sample_rate, config.num_mel_bins))
        ),
        "config": json.dumps(config.to_dict()),
    }


def _batch_axes(names: list[str]) -> dict[str, dict[int, str]]:
    return {name: {0: "batch"} for name in names}


def asr_graphs(model: AsrModel) -> dict[str, dict[str, Any]]:
    """Export arguments of every ASR graph: ``{file name: {module, args,
    input_names, output_names, dynamic_axes}}``."""
    config = model.config
    d, m = config.d_model, config.num_mel_bins
    chunk, left = config.streaming.chunk_size, config.streaming.left_context
    k2 = config.conv_kernel // 2
    names = cache_names(config.num_layers)
    state = model.init_state(2, left)
    caches = []
    for i in range(config.num_layers):
        caches += [state.keys[i], state.values[i], state.conv[i]]
    window = (chunk - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
    step_inputs = ["features", "num_valid", "processed", *names]
    step_outputs = ["log_probs", "new_processed", *(f"new_{n}" for n in names)]
    graphs: dict[str, dict[str, Any]] = {
        "asr_step.onnx": dict(
            module=StepGraph(model),
            args=(
                torch.randn(2, window, m),
                torch.tensor([chunk, max(chunk - 1, 1)]),
                torch.zeros(2, dtype=torch.long),
                *caches,
            ),
            input_names=step_inputs,
            output_names=step_outputs,
            dynamic_axes=_batch_axes(step_inputs + step_outputs),
        ),
        "asr_subsampling.onnx": dict(
            module=SubsamplingGraph(model),
            args=(torch.randn(2, 8 * SUBSAMPLING + SUBSAMPLING_FIELD, m),),
            input_names=["features"],
            output_names=["encoded"],
            dynamic_axes={
                "features": {0: "batch", 1: "frames"},
                "encoded": {0: "batch", 1: "encoder_frames"},
            },
        ),
        "asr_ctc.onnx": dict(
            module=CtcGraph(model),
            args=(torch.randn(5, d),),
            input_names=["x"],
            output_names=["log_probs"],
            dynamic_axes={"x": {0: "frames"}, "log_probs": {0: "frames"}},
        ),
    }
    layer_args = _layer_example(d, k2)
    layer_inputs = ["x", "cache_k", "cache_v", "cache_conv", *GRAPH_LAYOUT_FIELDS]
    layer_outputs = ["output", "new_cache_k", "new_cache_v", "new_cache_conv"]
    axes = {
        "x": {0: "frames"},
        "cache_k": {0: "streams", 1: "left_context"},
        "cache_v": {0: "streams", 1: "left_context"},
        "cache_conv": {0: "streams"},
        "query_index": {0: "chunks", 1: "chunk_size"},
        "key_index": {0: "chunks", 1: "key_window"},
        "key_valid": {0: "chunks", 1: "key_window"},
        "conv_index": {0: "chunks", 1: "conv_window"},
        "conv_valid": {0: "chunks", 1: "conv_window"},
        "output_index": {0: "outputs"},
        "new_key_index": {0: "streams", 1: "left_context"},
        "new_conv_index": {0: "streams"},
        "output": {0: "outputs"},
        "new_cache_k": {0: "streams", 1: "left_context"},
        "new_cache_v": {0: "streams", 1: "left_context"},
        "new_cache_conv": {0: "streams"},
    }
    for i in range(config.num_layers):
        graphs[f"asr_layer_{i}.onnx"] = dict(
            module=LayerGraph(model, i),
            args=layer_args,
            input_names=layer_inputs,
            output_names=layer_outputs,
            dynamic_axes=axes,
        )
    return graphs


def _layer_example(dim: int, conv_context: int) -> tuple[Tensor, ...]:
    """Tracing inputs: two streams, C=4, L=6, R=2, caches partly filled."""
    import numpy as np

    from speech.core.layout import chunk_layout_arrays

    lengths = np.array([11, 6])
    queries = np.array([8, 6])
    arrays = chunk_layout_arrays(
        lengths, queries, np.array([3, 0]), 4, 6, 2, conv_context, 6, conv_context
    )
    return (
        torch.randn(int(lengths.sum()), dim),
        torch.randn(2, 6, dim),
        torch.randn(2, 6, dim),
        torch.randn(2, conv_context, dim),
        *(torch.from_numpy(arrays[f]) for f in GRAPH_LAYOUT_FIELDS),
    )
