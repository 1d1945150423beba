"""Layer-pipelined encoding of inputs of unbounded length on PyTorch.

``EncoderPipeline`` runs the control of ``speech.asr.layer_pipeline``
(pending frames per layer, queries per call, a layout per layer) on an
``AsrModel``. Memory is bounded by the block pushed in plus C + R frames per
layer, whatever the duration, and the output equals the masked-batching
``ChunkFormerEncoder.forward`` over the whole input exactly.

Letters: T input frames, T' encoder frames, D model width, M mel bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speech.asr.config import ChunkGeometry
from speech.asr.layer_pipeline import LayerPipeline, subsampling_windows
from speech.asr.model import AsrModel
from speech.core import build_chunk_layout, relative_position_table

__all__ = ["EncoderPipeline"]


class EncoderPipeline(LayerPipeline[Tensor]):
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
        encoder = model.encoder
        param = model.ctc.weight
        self.device, self.dtype = param.device, param.dtype
        d = model.config.d_model
        num_layers = len(encoder.layers)
        super().__init__(
            geometry,
            num_layers,
            features=torch.zeros(
                0, model.config.num_mel_bins, device=self.device, dtype=self.dtype
            ),
            frames=torch.zeros(0, d, device=self.device, dtype=self.dtype),
            conv_context=encoder.conv_context,
            max_subsampling_frames=max_subsampling_frames,
        )
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
        self.positions = relative_position_table(
            geometry.chunk_size,
            geometry.left_context,
            geometry.right_context,
            d,
            device=self.device,
            dtype=self.dtype,
        )

    @torch.inference_mode()
    def push(self, features: Tensor) -> Tensor:
        """Add (T, M) raw features; returns (T'_ready, V) log-probabilities."""
        return super().push(features)

    @torch.inference_mode()
    def flush(self) -> Tensor:
        """End of input: process everything left; returns (T'_rest, V)."""
        return super().flush()

    def _concat(self, parts: list[Tensor]) -> Tensor:
        return torch.cat(parts)

    def _normalize(self, features: Tensor) -> Tensor:
        return self.model.normalize(features.to(self.device, self.dtype))

    def _subsample(self, features: Tensor, count: int) -> Tensor:
        if count == 0:
            return features.new_zeros(0, self.model.config.d_model)
        subsampling = self.model.encoder.subsampling
        return torch.cat(
            [
                subsampling(features[window][None])[0]
                for _, window in subsampling_windows(count, self.max_subsampling_frames)
            ]
        )

    def _build_layout(self, num_frames: int, num_queries: int, processed: int):
        g, context = self.geometry, self.conv_context
        return build_chunk_layout(
            num_frames=torch.tensor([num_frames]),
            num_queries=torch.tensor([num_queries]),
            processed=torch.tensor([processed]),
            chunk_size=g.chunk_size,
            left_context=g.left_context,
            right_context=g.right_context,
            conv_context=context,
            key_cache_rows=g.left_context,
            conv_cache_rows=context,
            device=self.device,
        )

    def _run_layer(self, index: int, x: Tensor, num_queries: int) -> Tensor:
        layout = self._layout(index, x.shape[0], num_queries)
        out, self.keys[index], self.values[index], self.conv[index] = (
            self.model.encoder.layers[index](
                x,
                layout,
                self.positions,
                self.keys[index],
                self.values[index],
                self.conv[index],
            )
        )
        return out

    def _ctc(self, x: Tensor) -> Tensor:
        return self.model.ctc(x).float().log_softmax(-1)
