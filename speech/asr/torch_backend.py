"""The PyTorch back end of the recognizer: numpy in, numpy out, so the
decoding, batching and streaming logic above it is shared with the ONNX
Runtime back end.

Letters: B streams, T input frames, T' encoder frames, C chunk size,
M mel bins, V vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speech.asr.config import AsrConfig, ChunkGeometry
from speech.asr.encoder import EncoderState, stack_states, unstack_states
from speech.asr.longform import EncoderPipeline
from speech.asr.model import AsrModel, load_model
from speech.asr.tokenizer import Tokenizer

__all__ = ["TorchBackend"]


class _Pipeline:
    def __init__(self, pipeline: EncoderPipeline) -> None:
        self.pipeline = pipeline

    def push(self, features: np.ndarray) -> np.ndarray:
        return self.pipeline.push(torch.from_numpy(features)).cpu().numpy()

    def flush(self) -> np.ndarray:
        return self.pipeline.flush().cpu().numpy()


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        model: AsrModel | str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        loaded = not isinstance(model, AsrModel)
        if loaded:
            model = load_model(model, device)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if loaded and self.device.type == "cpu":
            # a model the caller passed in (one in training, say) is left as it is
            self.model.encoder.subsampling.for_cpu_inference()
        if dtype is not None:
            self.model.to(dtype)
            self.model.feature_mean.data = self.model.feature_mean.float()
            self.model.feature_istd.data = self.model.feature_istd.float()
        if model.tokenizer is None:
            raise ValueError("the model has no tokenizer (tokenizer.model missing)")
        self.tokenizer: Tokenizer = model.tokenizer

    @property
    def config(self) -> AsrConfig:
        return self.model.config

    @torch.inference_mode()
    def encode_list(
        self, features: list[np.ndarray], geometry: ChunkGeometry
    ) -> list[np.ndarray]:
        """Masked batching: (T_b, M) features -> (T'_b, V) log-probabilities."""
        dtype = self.model.ctc.weight.dtype
        tensors = [torch.from_numpy(f).to(self.device, dtype) for f in features]
        outputs = self.model.forward_list(
            tensors, geometry.chunk_size, geometry.left_context, geometry.right_context
        )
        return [o.cpu().numpy() for o in outputs]

    def pipeline(self, geometry: ChunkGeometry) -> _Pipeline:
        """A long-form encoder: ``push((T, M)) -> (T'_ready, V)``, ``flush()``."""
        return _Pipeline(EncoderPipeline(self.model, geometry))

    def init_state(self, batch: int, left_context: int) -> EncoderState:
        return self.model.init_state(batch, left_context, self.device)

    stack_states = staticmethod(stack_states)
    unstack_states = staticmethod(unstack_states)

    @torch.inference_mode()
    def step(
        self, windows: np.ndarray, state: EncoderState, num_valid: np.ndarray
    ) -> tuple[np.ndarray, EncoderState]:
        """Streaming step: (B, 8C + 7, M) windows -> (B, C, V) log-probs."""
        dtype = self.model.ctc.weight.dtype
        log_probs, state = self.model.forward_chunk(
            torch.from_numpy(windows).to(self.device, dtype),
            state,
            torch.from_numpy(num_valid).to(self.device),
        )
        return log_probs.cpu().numpy(), state
