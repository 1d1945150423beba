"""Layer-pipelined encoding of inputs of unbounded length.

Every layer keeps the frames of its input that it has not processed yet
(``pending``) and fixed-size caches of the frames before them. A layer can
process chunk j once its input holds the frames up to ``(j + 1) * C + R``, so
with R > 0 each layer runs behind the one below it; with R = 0 all layers
advance together. Memory is bounded by the block pushed in plus C + R frames
per layer, whatever the duration, and the output equals the masked-batching
``ChunkFormerEncoder.forward`` over the whole input exactly.

Letters: T input frames, T' encoder frames, D model width, M mel bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speech.asr.config import SUBSAMPLING, SUBSAMPLING_FIELD, ChunkGeometry
from speech.asr.encoder import subsampled_length
from speech.asr.model import AsrModel
from speech.core import build_chunk_layout, relative_position_table

__all__ = ["EncoderPipeline"]


class EncoderPipeline:
    """Encode one input pushed in blocks of features; emits CTC
    log-probabilities as soon as they are final.

    Example:
        pipe = EncoderPipeline(model, ChunkGeometry(64, 128, 64))
        for block in blocks:  # (T_block, M) raw log-mel features
            log_probs = pipe.push(block)  # (T'_ready, V)
        log_probs = pipe.flush()
    """

    def __init__(
        self,
        model: AsrModel,
        geometry: ChunkGeometry,
        max_subsampling_frames: int = 1024,
    ) -> None:
        self.model = model
        self.geometry = geometry
        self.max_subsampling_frames = max_subsampling_frames
        encoder = model.encoder
        param = model.ctc.weight
        self.device, self.dtype = param.device, param.dtype
        d = model.config.d_model
        num_layers = len(encoder.layers)
        self.features = torch.zeros(
            0, model.config.num_mel_bins, device=self.device, dtype=self.dtype
        )
        self.pending = [
            torch.zeros(0, d, device=self.device, dtype=self.dtype)
            for _ in range(num_layers)
        ]
        left, context = geometry.left_context, encoder.conv_context
        self.keys = [
            torch.zeros(1, left, d, device=self.device, dtype=self.dtype)
            for _ in range(num_layers)
        ]
        self.values = [k.clone() for k in self.keys]
        self.conv = [
            torch.zeros(1, context, d, device=self.device, dtype=self.dtype)
            for _ in range(num_layers)
        ]
        self.processed = [0] * num_layers
        self.positions = relative_position_table(
            geometry.chunk_size,
            geometry.left_context,
            geometry.right_context,
            d,
            device=self.device,
            dtype=self.dtype,
        )
        self.frames_out = 0

    @torch.inference_mode()
    def push(self, features: Tensor) -> Tensor:
        """Add (T, M) raw features; returns (T'_ready, V) log-probabilities."""
        features = self.model.normalize(features.to(self.device, self.dtype))
        self.features = torch.cat([self.features, features])
        return self._advance(final=False)

    @torch.inference_mode()
    def flush(self) -> Tensor:
        """End of input: process everything left; returns (T'_rest, V)."""
        return self._advance(final=True)

    def _subsample(self) -> Tensor:
        count = int(subsampled_length(self.features.shape[0]))
        if count == 0:
            return self.features.new_zeros(0, self.model.config.d_model)
        pieces = []
        subsampling = self.model.encoder.subsampling
        for start in range(0, count, self.max_subsampling_frames):
            stop = min(start + self.max_subsampling_frames, count)
            window = self.features[
                start * SUBSAMPLING : (stop - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
            ]
            pieces.append(subsampling(window[None])[0])
        self.features = self.features[count * SUBSAMPLING :]
        return torch.cat(pieces)

    def _advance(self, final: bool) -> Tensor:
        g = self.geometry
        new = self._subsample()
        for i, layer in enumerate(self.model.encoder.layers):
            pending = torch.cat([self.pending[i], new])
            available = pending.shape[0]
            if final:
                queries = available
            else:
                queries = (
                    max(available - g.right_context, 0) // g.chunk_size * g.chunk_size
                )
            if queries == 0:
                self.pending[i] = pending
                new = pending[:0]
                continue
            layout = build_chunk_layout(
                num_frames=torch.tensor([available]),
                num_queries=torch.tensor([queries]),
                processed=torch.tensor([self.processed[i]]),
                chunk_size=g.chunk_size,
                left_context=g.left_context,
                right_context=g.right_context,
                conv_context=self.model.encoder.conv_context,
                key_cache_rows=g.left_context,
                conv_cache_rows=self.model.encoder.conv_context,
                device=self.device,
            )
            new, self.keys[i], self.values[i], self.conv[i] = layer(
                pending,
                layout,
                self.positions,
                self.keys[i],
                self.values[i],
                self.conv[i],
            )
            self.pending[i] = pending[queries:]
            self.processed[i] += queries
        self.frames_out += new.shape[0]
        return self.model.ctc(new).float().log_softmax(-1)
