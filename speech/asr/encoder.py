"""ChunkFormer encoder: 8x depthwise-striding subsampling and Conformer layers
with chunked relative-position attention.

Letters: B utterances or streams, T input (10 ms) frames, T' encoder (80 ms)
frames, F flat frames of many streams, N chunks, C chunk size, L left and R
right context, D model width, K2 half the convolution kernel, M mel bins.

Three ways to run the same weights:
- ``forward``: masked batching. The encoder frames of all utterances are
  concatenated (no padding) and cut into chunks; every layer runs all chunks
  of all utterances as one batch. Used for training and offline decoding.
- ``forward_chunk``: streaming with R = 0. B streams advance one chunk each
  with fixed-size caches (keys/values of L frames and K2 convolution inputs
  per layer, plus a processed-frames counter). Exactly equals ``forward``.
- ``ConformerLayer.forward`` with caches, driven by ``speech.asr.longform``,
  for any R over inputs of unbounded length with bounded memory.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from speech.asr.config import SUBSAMPLING, SUBSAMPLING_FIELD, AsrConfig
from speech.asr.layer_pipeline import subsampled_frames
from speech.core import (
    ChunkConvolution,
    ChunkLayout,
    FeedForward,
    RelPositionAttention,
    build_chunk_layout,
    build_dense_layout,
    gather_rows,
    padding_mask,
    relative_position_table,
    take_rows,
)

__all__ = [
    "ChunkFormerEncoder",
    "ConformerLayer",
    "ConvSubsampling",
    "EncoderState",
    "stack_states",
    "unstack_states",
    "subsampled_length",
]


def subsampled_length(num_frames: Tensor | int) -> Tensor | int:
    """Encoder frames produced from ``num_frames`` input frames (valid convs:
    frame j reads input frames 8j .. 8j + 14)."""
    if isinstance(num_frames, int):
        return subsampled_frames(num_frames)
    out = (num_frames - SUBSAMPLING_FIELD) // SUBSAMPLING + 1
    return torch.where(num_frames >= SUBSAMPLING_FIELD, out, torch.zeros_like(out))


class ConvSubsampling(nn.Module):
    """8x subsampling: conv 3x3/2, then twice [depthwise 3x3/2, pointwise],
    ReLU after each stage; no padding, so frame j sees input frames
    8j .. 8j + 14 and nothing else (windows can be processed independently).

    (B, T, M) -> (B, T', D) with T' = (T - 15) // 8 + 1.

    On CUDA the time axis is zero-padded so that T' is a multiple of
    ``cuda_bucket`` (when T' > ``cuda_bucket``) and the extra frames are
    dropped: cuDNN builds an execution plan for every new input shape (tens of
    milliseconds each in bf16), and the windows of long-form blocks and
    batches would otherwise bring new shapes on every call. The output is
    unchanged (frames only see their own 15 input frames).
    """

    cuda_bucket = 64

    def __init__(self, num_mel_bins: int, channels: int, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, 2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 2, groups=channels),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 2, groups=channels),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
        )
        freq = num_mel_bins
        for _ in range(3):
            freq = (freq - 1) // 2
        self.out = nn.Linear(channels * freq, dim)
        self.scale = math.sqrt(dim)

    def for_cpu_inference(self) -> None:
        """Channels-last weights and in-place ReLUs, for inference on CPU:
        oneDNN then keeps the feature maps channels-last through the stack
        and no ReLU allocates a map of its own. Four 15 s inputs of the
        19.88M model encode at RTF 0.0040 instead of 0.0054 on two cores
        (benchmarks/onnx_vs_torch.py --seconds 60), the output equal to
        float rounding."""
        self.conv.to(memory_format=torch.channels_last)
        for module in self.conv:
            if isinstance(module, nn.ReLU):
                module.inplace = True

    def forward(self, features: Tensor, bucket: int | None = None) -> Tensor:
        """``bucket``: pad T' up to a multiple of it (None: ``cuda_bucket`` on
        CUDA, no padding elsewhere)."""
        if bucket is None:
            bucket = self.cuda_bucket if features.is_cuda else 1
        keep = None  # frames to keep when the input was padded
        if bucket > 1:  # never while exporting (CPU): shapes stay symbolic
            count = subsampled_frames(features.shape[1])
            if count > bucket and count % bucket:
                padded = -(-count // bucket) * bucket
                extra = (padded - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
                features = F.pad(features, (0, 0, 0, extra - features.shape[1]))
                keep = count
        y = self.conv(features[:, None])  # (B, ch, T', freq)
        # Scaled by sqrt(D) so that the input, not the layers' biases,
        # dominates the residual stream at initialisation.
        out = self.out(y.transpose(1, 2).flatten(2)) * self.scale  # (B, T', D)
        return out if keep is None else out[:, :keep]


class ConformerLayer(nn.Module):
    """Macaron Conformer layer with chunked relative attention and a
    chunk-limited convolution module (pre-norm, final LayerNorm)."""

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, kernel_size: int, dropout: float
    ) -> None:
        super().__init__()
        self.ffn_in = FeedForward(dim, ffn_dim, dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = RelPositionAttention(dim, num_heads, dropout)
        self.convolution = ChunkConvolution(dim, kernel_size, dropout)
        self.ffn_out = FeedForward(dim, ffn_dim, dropout)
        self.final_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        layout: ChunkLayout,
        positions: Tensor,
        key_cache: Tensor | None = None,
        value_cache: Tensor | None = None,
        conv_cache: Tensor | None = None,
        attention_layout: ChunkLayout | None = None,
        caches: bool = True,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """Process the chunks of a flat frame sequence.

        Args:
            x: (F, D) layer input of all streams (see ``ChunkLayout``).
            layout: from ``build_chunk_layout`` with matching cache rows.
            positions: (P, D) relative positions of the attention layout.
            key_cache, value_cache: (B, S, D) or None; conv_cache (B, K2, D).
            attention_layout: another layout for the attention alone, e.g.
                ``build_dense_layout`` (no caches); defaults to ``layout``.
            caches: False skips the new caches (None), e.g. in training.

        Returns:
            output (Q, D) for the processed frames (stream-major), new key
            and value caches (B, L, D), new conv cache (B, K2, D).
        """
        attend_in = attention_layout if attention_layout is not None else layout
        x = x + 0.5 * self.ffn_in(x)
        h = self.attention_norm(x)
        keys, values = self.attention.project_keys_values(h)  # (F, D) each
        queries = self.attention.project_queries(take_rows(h, attend_in.query_index))
        window_keys = gather_rows(key_cache, keys, attend_in.key_index)  # (N, W, D)
        window_values = gather_rows(value_cache, values, attend_in.key_index)
        attended = self.attention.attend(
            queries,
            window_keys,
            window_values,
            attend_in.key_valid,
            positions,
            attend_in.attention_mask,
        )  # (N, C, D)
        y = take_rows(x, layout.query_rows) + self.dropout(
            take_rows(attended.flatten(0, 1), attend_in.output_index)
        )  # (Q, D)
        gate = self.convolution.gate(y)  # (Q, D)
        window = gather_rows(conv_cache, gate, layout.conv_index, layout.conv_valid)
        mixed = self.convolution.mix(window).flatten(0, 1)
        y = y + take_rows(mixed, layout.output_index)
        y = y + 0.5 * self.ffn_out(y)
        output = self.final_norm(y)
        if not caches:
            return output, None, None, None
        new_keys = gather_rows(key_cache, keys, layout.new_key_index)
        new_values = gather_rows(value_cache, values, layout.new_key_index)
        new_conv = gather_rows(conv_cache, gate, layout.new_conv_index)
        return output, new_keys, new_values, new_conv

    def forward_chunk(
        self,
        x: Tensor,
        num_valid: Tensor,
        processed: Tensor,
        key_cache: Tensor,
        value_cache: Tensor,
        conv_cache: Tensor,
        positions: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One chunk of B streams with R = 0 and fixed-size caches.

        Args:
            x: (B, C, D) layer input; frames at or past ``num_valid`` are
                padding (only in a stream's last chunk).
            num_valid: (B,) valid frames in this chunk.
            processed: (B,) frames processed before this chunk.
            key_cache, value_cache: (B, L, D); conv_cache: (B, K2, D).
            positions: (L + 2C - 1, D) ``relative_position_table(C, L, 0, D)``.

        Returns:
            (B, C, D) output, new key, value and conv caches (same shapes).
        """
        batch, chunk, _ = x.shape
        left = key_cache.shape[1]
        context = conv_cache.shape[1]
        x = x + 0.5 * self.ffn_in(x)
        h = self.attention_norm(x)
        keys, values = self.attention.project_keys_values(h)  # (B, C, D)
        queries = self.attention.project_queries(h)
        window_keys = torch.cat([key_cache, keys], dim=1)  # (B, L + C, D)
        window_values = torch.cat([value_cache, values], dim=1)
        slot = torch.arange(left + chunk, device=x.device)[None, :]
        filled = torch.clamp(processed, max=left)[:, None]
        key_valid = (slot >= left - filled) & (slot < left + num_valid[:, None])
        y = x + self.attention.attend(
            queries, window_keys, window_values, key_valid, positions
        )
        frame_valid = torch.arange(chunk, device=x.device)[None, :] < num_valid[:, None]
        gate = self.convolution.gate(y) * frame_valid[..., None].to(y.dtype)
        window = torch.cat([conv_cache, gate], dim=1)  # (B, K2 + C, D)
        conv_slot = torch.arange(context + chunk, device=x.device)[None, :]
        conv_filled = torch.clamp(processed, max=context)[:, None]
        window = window * (conv_slot >= context - conv_filled)[..., None].to(y.dtype)
        y = y + self.convolution.mix(window)
        y = y + 0.5 * self.ffn_out(y)
        y = self.final_norm(y)
        # the caches end at the last valid frame of the chunk
        end = num_valid[:, None, None]
        width = x.shape[-1]
        key_index = (end + torch.arange(left, device=x.device)[None, :, None]).expand(
            batch, left, width
        )
        conv_index = (
            end + torch.arange(context, device=x.device)[None, :, None]
        ).expand(batch, context, width)
        return (
            y,
            torch.gather(window_keys, 1, key_index),
            torch.gather(window_values, 1, key_index),
            torch.gather(window, 1, conv_index),
        )


class EncoderState(NamedTuple):
    """Fixed-size streaming state of B streams (only B varies)."""

    keys: Tensor  # (num_layers, B, L, D)
    values: Tensor  # (num_layers, B, L, D)
    conv: Tensor  # (num_layers, B, K2, D)
    processed: Tensor  # (B,) int64 encoder frames processed so far


def stack_states(states: list[EncoderState]) -> EncoderState:
    """Batch the states of several streams (B = sum of their batches)."""
    return EncoderState(
        keys=torch.cat([s.keys for s in states], dim=1),
        values=torch.cat([s.values for s in states], dim=1),
        conv=torch.cat([s.conv for s in states], dim=1),
        processed=torch.cat([s.processed for s in states], dim=0),
    )


def unstack_states(state: EncoderState) -> list[EncoderState]:
    """Split a batched state into one state per stream (B = 1 each)."""
    return [
        EncoderState(
            keys=state.keys[:, i : i + 1],
            values=state.values[:, i : i + 1],
            conv=state.conv[:, i : i + 1],
            processed=state.processed[i : i + 1],
        )
        for i in range(state.processed.shape[0])
    ]


class ChunkFormerEncoder(nn.Module):
    def __init__(self, config: AsrConfig) -> None:
        super().__init__()
        self.config = config
        self.subsampling = ConvSubsampling(
            config.num_mel_bins, config.subsampling_channels, config.d_model
        )
        self.layers = nn.ModuleList(
            ConformerLayer(
                config.d_model,
                config.num_heads,
                config.ffn_dim,
                config.conv_kernel,
                config.dropout,
            )
            for _ in range(config.num_layers)
        )

    @property
    def conv_context(self) -> int:
        return self.config.conv_kernel // 2

    def subsample(
        self, features: Tensor, lengths: Tensor, max_frames: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Subsample a padded batch, optionally in windows of at most
        ``max_frames`` encoder frames to bound memory on long inputs.

        Args:
            features: (B, T, M) normalised features; lengths (B,).

        Returns:
            (B, T', D) and (B,) encoder lengths.
        """
        out_lengths = subsampled_length(lengths)
        total = features.shape[1]
        out_total = int(subsampled_length(total))
        if out_total == 0:
            return features.new_zeros(
                features.shape[0], 0, self.config.d_model
            ), out_lengths
        if max_frames <= 0 or out_total <= max_frames:
            return self.subsampling(features)[:, :out_total], out_lengths
        pieces = []
        for start in range(0, out_total, max_frames):
            stop = min(start + max_frames, out_total)
            window = features[
                :, start * SUBSAMPLING : (stop - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
            ]
            pieces.append(self.subsampling(window))
        return torch.cat(pieces, dim=1), out_lengths

    def forward(
        self,
        features: Tensor,
        lengths: Tensor,
        chunk_size: int,
        left_context: int,
        right_context: int,
        max_subsampling_frames: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Masked-batching forward over whole utterances.

        Args:
            features: (B, T, M) normalised features, padded.
            lengths: (B,) valid input frames.
            chunk_size, left_context, right_context: geometry in encoder
                frames; a chunk as long as the longest utterance with no
                context is full-context attention.

        Returns:
            (B, T', D) encoder output (zeros past each length), (B,) lengths.
        """
        x, out_lengths = self.subsample(features, lengths, max_subsampling_frames)
        mask = padding_mask(out_lengths, x.shape[1])
        flat = self.forward_flat(
            x[mask], out_lengths, chunk_size, left_context, right_context
        )
        out = x.new_zeros(x.shape)
        out[mask] = flat.to(out.dtype)
        return out, out_lengths

    def forward_flat(
        self,
        x: Tensor,
        lengths: Tensor,
        chunk_size: int,
        left_context: int,
        right_context: int,
    ) -> Tensor:
        """Layers over a flat (F, D) sequence of streams of ``lengths`` frames."""
        if x.shape[0] == 0:
            return x
        # Contexts and chunks longer than the longest stream change nothing;
        # clamping keeps "full context" (a huge chunk) cheap.
        longest = int(lengths.max())
        chunk_size = min(chunk_size, longest)
        left_context = min(left_context, longest)
        right_context = min(right_context, longest)
        layout = build_chunk_layout(
            num_frames=lengths,
            num_queries=lengths,
            processed=torch.zeros_like(lengths),
            chunk_size=chunk_size,
            left_context=left_context,
            right_context=right_context,
            conv_context=self.conv_context,
            key_cache_rows=0,
            conv_cache_rows=0,
            device=x.device,
        )
        # Chunk windows cost F * (L + C + R) scores plus gathers of as many
        # keys and values; one dense block per stream costs B * T^2 scores
        # and no gathers. Short utterances (training) take the dense block.
        attention_layout = None
        geometry = (chunk_size, left_context, right_context)
        window = chunk_size + left_context + right_context
        if lengths.numel() * longest * longest <= 8 * int(lengths.sum()) * window:
            attention_layout = build_dense_layout(lengths, *geometry, device=x.device)
            geometry = (longest, 0, 0)
        positions = relative_position_table(
            *geometry, self.config.d_model, device=x.device, dtype=x.dtype
        )
        for layer in self.layers:
            x = layer(
                x, layout, positions, attention_layout=attention_layout, caches=False
            )[0]
        return x

    def init_state(
        self,
        batch: int,
        left_context: int,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> EncoderState:
        """Zero caches for ``batch`` new streams."""
        n, d = self.config.num_layers, self.config.d_model
        return EncoderState(
            keys=torch.zeros(n, batch, left_context, d, device=device, dtype=dtype),
            values=torch.zeros(n, batch, left_context, d, device=device, dtype=dtype),
            conv=torch.zeros(
                n, batch, self.conv_context, d, device=device, dtype=dtype
            ),
            processed=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def forward_chunk(
        self,
        features: Tensor,
        state: EncoderState,
        num_valid: Tensor | None = None,
    ) -> tuple[Tensor, EncoderState]:
        """Advance B streams by one chunk (R = 0).

        Args:
            features: (B, 8C + 7, M) normalised features: the window whose
                encoder frames are this chunk's C frames (consecutive windows
                overlap by 7 input frames).
            state: from ``init_state`` or the previous call; its key cache
                length is the left context L.
            num_valid: (B,) valid encoder frames (< C only in a stream's last
                chunk); defaults to C.

        Returns:
            (B, C, D) output and the new state.
        """
        x = self.subsampling(features)  # (B, C, D)
        batch, chunk, _ = x.shape
        if num_valid is None:
            num_valid = torch.full((batch,), chunk, dtype=torch.long, device=x.device)
        left = state.keys.shape[2]
        positions = relative_position_table(
            chunk, left, 0, self.config.d_model, device=x.device, dtype=x.dtype
        )
        keys, values, conv = [], [], []
        for i, layer in enumerate(self.layers):
            x, k, v, c = layer.forward_chunk(
                x,
                num_valid,
                state.processed,
                state.keys[i],
                state.values[i],
                state.conv[i],
                positions,
            )
            keys.append(k)
            values.append(v)
            conv.append(c)
        new_state = EncoderState(
            keys=torch.stack(keys),
            values=torch.stack(values),
            conv=torch.stack(conv),
            processed=state.processed + num_valid,
        )
        return x, new_state
