"""ONNX graphs of the synthesizer: thin wrappers that flatten the streaming
states into named inputs and outputs.

Letters: B utterances or streams, N symbols, C' frames in a decoder chunk
(1..C), Tc frames in a vocoder call, D model width, M mel bins, L past
context, K1 decoder conv context, H hop, S FFT size.

``tts_encoder.onnx`` text encoder and predictors (``FastPitch.prosody``
    without the length regulation, which is ``np.repeat`` at run time):
    in:  ids (B, N) int64, lengths (B,) int64, pace (B,), pitch_shift (B,)
         (semitones)
    out: encodings (B, N, D) (prosody embeddings added), durations (B, N)
         int64 frames, pitch (B, N), energy (B, N)
``tts_decoder_step.onnx`` (``IncrementalDecoder.forward_chunk``):
    in:  frames (B, C', D), processed (B,) int64, cache_k_i, cache_v_i
         (B, L, D), cache_conv_i (B, K1, D) for i < decoder layers
    out: mel (B, C', M), new_processed, new_cache_k_i, new_cache_v_i,
         new_cache_conv_i
``tts_decoder_chunks.onnx`` (``IncrementalDecoder.forward_chunk`` with
    several chunks: every block's ``forward_flat``, the norm and ``to_mel``
    over a flat chunk layout with R = 0, the model's C, L and K1):
    in:  x (F, D) the frames of B streams, stream-major (F = B * C'),
         cache_k_i, cache_v_i (B, L, D), cache_conv_i (B, K1, D) for
         i < decoder layers, and the ``speech.core.layout.chunk_layout_arrays``
         arrays ``GRAPH_LAYOUT_FIELDS`` made with chunk_size C, left_context
         L, right_context 0, conv_context K1, key_cache_rows L and
         conv_cache_rows K1 (``processed`` enters through them;
         ``speech.onnx.tts.decoder_chunks_layout`` makes them)
    out: mel (F, M), new_cache_k_i, new_cache_v_i, new_cache_conv_i (the
         caches of ``tts_decoder_step.onnx``; new processed = processed + C')
``tts_vocoder_step.onnx`` (``Vocoder.forward_chunk``, and ``flush``):
    in:  mel (B, M, Tc), mel_cache, conv_cache, overlap, frames (the
         ``VocoderState`` fields)
    out: audio (B, Tc * H) stream samples, new_mel_cache, new_conv_cache,
         new_overlap, new_frames, tail (B, S / 2): what ``flush`` returns
         if the stream ends after this call
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

import torch
from torch import Tensor, nn

import speech
from speech.core import ChunkLayout, padding_mask, relative_position_table
from speech.core.layout import GRAPH_LAYOUT_FIELDS
from speech.onnx.tts import decoder_chunks_layout
from speech.tts.decoder import ChunkFFTBlock, DecoderState
from speech.tts.fastpitch import FastPitch
from speech.tts.vocoder import Vocoder, VocoderState

__all__ = [
    "DecoderChunksGraph",
    "DecoderStepGraph",
    "TextEncoderGraph",
    "VocoderStepGraph",
    "decoder_cache_names",
    "decoder_layout",
    "tts_graphs",
    "tts_metadata",
    "vocoder_metadata",
]

EXPORT_FORMAT = 1
VOCODER_STATE = tuple(VocoderState._fields)


def decoder_cache_names(num_layers: int) -> list[str]:
    return [
        f"{kind}_{i}"
        for i in range(num_layers)
        for kind in ("cache_k", "cache_v", "cache_conv")
    ]


class TextEncoderGraph(nn.Module):
    """``FastPitch.prosody`` up to the length regulation, with per-utterance
    pace and pitch shift."""

    def __init__(self, model: FastPitch) -> None:
        super().__init__()
        self.model = model
        # semitones -> normalised pitch (speech.tts.pitch.semitones_to_normalized)
        self.semitone = math.log(2.0) / 12.0 / model.config.pitch_std

    def forward(
        self, ids: Tensor, lengths: Tensor, pace: Tensor, pitch_shift: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        m = self.model
        valid = padding_mask(lengths, ids.shape[1])  # (B, N)
        hidden = m.encoder(ids, lengths)
        log_durations = m.duration_predictor(hidden, valid)
        durations = torch.round((torch.exp(log_durations) - 1.0) / pace[:, None])
        durations = durations.clamp(min=0).long() * valid
        empty = (durations.sum(-1) == 0).long()  # never an empty utterance
        durations = torch.cat([durations[:, :1] + empty[:, None], durations[:, 1:]], 1)
        shift = (pitch_shift * self.semitone)[:, None]
        pitch = (m.pitch_predictor(hidden, valid) + shift) * valid
        energy = m.energy_predictor(hidden, valid)
        encodings = m._add_prosody(hidden, pitch, energy, valid)
        return encodings, durations, pitch, energy


class DecoderStepGraph(nn.Module):
    """``IncrementalDecoder.forward_chunk`` with per-layer state tensors."""

    def __init__(self, model: FastPitch) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(
        self, frames: Tensor, processed: Tensor, *caches: Tensor
    ) -> tuple[Tensor, ...]:
        state = DecoderState(
            keys=torch.stack(caches[0::3]),
            values=torch.stack(caches[1::3]),
            conv=torch.stack(caches[2::3]),
            processed=processed,
        )
        mel, new = self.decoder.forward_chunk(frames, state)
        flat = []
        for i in range(new.keys.shape[0]):
            flat += [new.keys[i], new.values[i], new.conv[i]]
        return (mel, new.processed, *flat)


class DecoderChunksGraph(nn.Module):
    """``IncrementalDecoder.forward_chunk`` on several chunks at once: the
    blocks' ``forward_flat`` over a chunk layout given as inputs (computed in
    numpy at run time), with the step graph's per-layer caches."""

    def __init__(self, model: FastPitch) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, x: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        d = self.decoder
        layers = len(d.blocks)
        caches, layout_arrays = inputs[: 3 * layers], inputs[3 * layers :]
        arrays = dict(zip(GRAPH_LAYOUT_FIELDS, layout_arrays, strict=True))
        layout = ChunkLayout(
            **arrays,
            query_valid=torch.zeros(0, dtype=torch.bool),  # unused by the blocks
            num_queries=torch.zeros(0, dtype=torch.long),  # unused by the blocks
            chunk_size=d.chunk_size,
            left_context=d.past_context,
            right_context=0,
        )
        positions = relative_position_table(d.chunk_size, d.past_context, 0, d.dim)
        flat = []
        for i, module in enumerate(d.blocks):
            block = cast(ChunkFFTBlock, module)
            x, new = block.forward_flat(
                x,
                layout,
                positions,
                (caches[3 * i], caches[3 * i + 1], caches[3 * i + 2]),
            )
            assert new is not None
            flat += list(new)
        return (d.to_mel(d.norm(x)), *flat)


def decoder_layout(
    model: FastPitch, frames: int, processed: Tensor
) -> tuple[Tensor, ...]:
    """The layout inputs of ``tts_decoder_chunks.onnx`` for ``frames`` new
    frames of every stream after ``processed`` (B,) frames."""
    d = model.decoder
    arrays = decoder_chunks_layout(
        frames, processed.numpy(), d.chunk_size, d.past_context, d.conv_context
    )
    return tuple(torch.from_numpy(arrays[f]) for f in GRAPH_LAYOUT_FIELDS)


class VocoderStepGraph(nn.Module):
    """``Vocoder.forward_chunk`` plus the ``flush`` of the new state."""

    def __init__(self, vocoder: Vocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, mel: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        audio, new = self.vocoder.forward_chunk(mel, VocoderState(*state))
        return (audio, *new, self.vocoder.flush(new))


def tts_metadata(model: FastPitch) -> dict[str, object]:
    c = model.config
    return {
        "model_type": "incremental_fastpitch",
        "version": speech.__version__,
        "export_format": EXPORT_FORMAT,
        "sample_rate": c.sample_rate,
        "hop": c.mel.hop_length,
        "n_fft": c.mel.n_fft,
        "num_mel_bins": c.mel.n_mels,
        "chunk_size": c.chunk_size,
        "past_context": c.past_context,
        "left_context": c.past_context,
        "right_context": 0,
        "conv_context": c.conv_context,
        "num_layers": c.decoder_layers,
        "d_model": c.model_dim,
        "symbols": json.dumps(list(c.symbols), ensure_ascii=False),
        "config": c.to_json(),
    }


def vocoder_metadata(vocoder: Vocoder) -> dict[str, object]:
    c = vocoder.config
    return {
        "model_type": "causal_vocos",
        "version": speech.__version__,
        "export_format": EXPORT_FORMAT,
        "sample_rate": c.mel.sample_rate,
        "hop": c.mel.hop_length,
        "n_fft": c.mel.n_fft,
        "num_mel_bins": c.mel.n_mels,
        "delay_samples": vocoder.delay_samples,
        "log_floor": c.mel.log_floor,
        "config": json.dumps(c.to_dict()),
    }


def tts_graphs(model: FastPitch, vocoder: Vocoder | None) -> dict[str, dict[str, Any]]:
    """Export arguments of every TTS graph (see ``export.asr_graphs``)."""
    c = model.config
    names = decoder_cache_names(c.decoder_layers)
    state = model.decoder.init_state(2)
    caches = []
    for i in range(c.decoder_layers):
        caches += [state.keys[i], state.values[i], state.conv[i]]
    step_in = ["frames", "processed", *names]
    step_out = ["mel", "new_processed", *(f"new_{n}" for n in names)]
    step_axes = {n: {0: "batch"} for n in step_in + step_out}
    step_axes["frames"] = {0: "batch", 1: "frames"}
    step_axes["mel"] = {0: "batch", 1: "frames"}
    per_symbol = {0: "batch", 1: "symbols"}
    graphs: dict[str, dict[str, Any]] = {
        "tts_encoder.onnx": dict(
            module=TextEncoderGraph(model),
            args=(
                torch.randint(1, c.num_symbols, (2, 7)),
                torch.tensor([7, 5]),
                torch.ones(2),
                torch.zeros(2),
            ),
            input_names=["ids", "lengths", "pace", "pitch_shift"],
            output_names=["encodings", "durations", "pitch", "energy"],
            dynamic_axes={
                "ids": per_symbol,
                "lengths": {0: "batch"},
                "pace": {0: "batch"},
                "pitch_shift": {0: "batch"},
                "encodings": per_symbol,
                "durations": per_symbol,
                "pitch": per_symbol,
                "energy": per_symbol,
            },
        ),
        "tts_decoder_step.onnx": dict(
            module=DecoderStepGraph(model),
            args=(torch.randn(2, c.chunk_size, c.model_dim), state.processed, *caches),
            input_names=step_in,
            output_names=step_out,
            dynamic_axes=step_axes,
        ),
    }
    # tracing example: two streams, 2.5 chunks each, after 3 frames
    processed = torch.tensor([3, 3])
    frames = 2 * c.chunk_size + max(1, c.chunk_size // 2)
    traced_caches = [torch.randn_like(t) for t in caches]
    chunks_in = ["x", *names, *GRAPH_LAYOUT_FIELDS]
    chunks_out = ["mel", *(f"new_{n}" for n in names)]
    chunks_axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
    chunks_axes.update({f"new_{n}": {0: "batch"} for n in names})
    chunks_axes.update(
        x={0: "frames"},
        mel={0: "frames"},
        query_index={0: "chunks"},
        key_index={0: "chunks"},
        key_valid={0: "chunks"},
        conv_index={0: "chunks"},
        conv_valid={0: "chunks"},
        output_index={0: "frames"},
        new_key_index={0: "batch"},
        new_conv_index={0: "batch"},
    )
    graphs["tts_decoder_chunks.onnx"] = dict(
        module=DecoderChunksGraph(model),
        args=(
            torch.randn(2 * frames, c.model_dim),
            *traced_caches,
            *decoder_layout(model, frames, processed),
        ),
        input_names=chunks_in,
        output_names=chunks_out,
        dynamic_axes=chunks_axes,
    )
    if vocoder is not None:
        vocoder_state = vocoder.init_state(2)
        inputs = ["mel", *VOCODER_STATE]
        outputs = ["audio", *(f"new_{n}" for n in VOCODER_STATE), "tail"]
        axes = {n: {0: "batch"} for n in inputs + outputs}
        axes["mel"] = {0: "batch", 2: "frames"}
        axes["audio"] = {0: "batch", 1: "samples"}
        graphs["tts_vocoder_step.onnx"] = dict(
            module=VocoderStepGraph(vocoder),
            args=(torch.randn(2, vocoder.config.mel.n_mels, 3) - 5, *vocoder_state),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
        )
    return graphs
