"""Incremental FastPitch decoder: chunked FFT blocks with fixed-size caches.

Letters: B streams, T frames, C chunk size (S_c), L past context (S_p),
K1 = conv kernel - 1 (past frames of the causal conv), D model width,
M mel bins, F flat frames (all valid frames of a batch), N chunks,
Nd decoder layers.

Each block is pre-norm: ``h = x + Attn(LN(x))``, ``y = h + FF(LN(h))``.
Attention is chunked with relative positions (Transformer-XL, from
``speech.core``): frames are grouped in chunks of C from the stream start and
a chunk attends to itself and the L frames before it (R = 0). FF is
``conv(k) -> ReLU -> conv(1)`` with a CAUSAL k-conv: frame t sees t - K1 .. t,
across chunk boundaries. The decoder has no absolute positional signal, so a
chunk's output depends only on its own frames and the caches, never on where
it sits in the stream.

Two entry points, same weights:

* ``forward(x, lengths)`` decodes whole padded batches, all chunks of all
  streams at once through a ``speech.core`` chunk layout (training, offline);
* ``forward_chunk(x_chunk, state)`` decodes one chunk per stream with a
  ``DecoderState`` of fixed size: per layer the keys and values of the last L
  frames and the conv inputs of the last K1 frames, plus a processed-frames
  counter that masks cache slots not filled yet.

Receptive field. An output frame at the start of a chunk reaches back
``decoder_receptive_field`` frames: each layer adds L frames of attention and,
through the causal conv's K1 past frames (which may sit in the previous
chunk), one more chunk. With the defaults (Nd = 4, C = 16, L = 48, K1 = 2) it
is 272 frames (4.35 s) back from the end of the chunk; the paper's formula
(Nd + floor(L / C) + 1) C = 128 frames counts the past states differently.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speech.core import (
    ChunkLayout,
    RelPositionAttention,
    build_chunk_layout,
    gather_rows,
    padding_mask,
    relative_position_table,
)

__all__ = [
    "ContextDistance",
    "DecoderState",
    "IncrementalDecoder",
    "chunk_context_distance",
    "decoder_receptive_field",
    "stack_states",
    "unstack_states",
]


class DecoderState(NamedTuple):
    """Streaming state of the decoder; only the batch dimension B varies."""

    keys: Tensor  # (Nd, B, L, D) attention keys of the last L frames
    values: Tensor  # (Nd, B, L, D)
    conv: Tensor  # (Nd, B, K1, D) conv inputs of the last K1 frames
    processed: Tensor  # (B,) int64 frames decoded so far


def stack_states(states: list[DecoderState]) -> DecoderState:
    """Batch several streams' states into one (streams may be at any offset)."""
    return DecoderState(
        keys=torch.cat([s.keys for s in states], dim=1),
        values=torch.cat([s.values for s in states], dim=1),
        conv=torch.cat([s.conv for s in states], dim=1),
        processed=torch.cat([s.processed for s in states], dim=0),
    )


def unstack_states(state: DecoderState) -> list[DecoderState]:
    """Split a batched state into one state per stream (batch of 1 each)."""
    return [
        DecoderState(
            keys=state.keys[:, b : b + 1],
            values=state.values[:, b : b + 1],
            conv=state.conv[:, b : b + 1],
            processed=state.processed[b : b + 1],
        )
        for b in range(state.processed.shape[0])
    ]


def decoder_receptive_field(
    num_layers: int, chunk_size: int, past_context: int, conv_context: int
) -> int:
    """Frames, counted back from the end of a chunk, that can influence it.

    Worst case (the chunk's first frame): per layer, the causal conv reaches
    K1 frames back (possibly into the previous chunk), whose attention reaches
    L frames before that chunk's start.

    Example: one layer, C=4, L=4, no conv: the chunk and 4 past frames.
        >>> decoder_receptive_field(1, 4, 4, 0)
        8
    """
    earliest = 0  # the first frame of the chunk whose start is frame 0
    for _ in range(num_layers):
        earliest = ((earliest - conv_context) // chunk_size) * chunk_size - past_context
    return chunk_size - earliest


class CausalConvFeedForward(nn.Module):
    """conv(K) -> ReLU -> conv(1) over windows [K1 past frames | C frames]."""

    def __init__(
        self, dim: int, hidden_dim: int, kernel_size: int, dropout: float
    ) -> None:
        super().__init__()
        self.expand = nn.Conv1d(dim, hidden_dim, kernel_size)
        self.project = nn.Conv1d(hidden_dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, window: Tensor) -> Tensor:
        """(N, K1 + C, D) -> (N, C, D); no padding, so frame i sees i-K1..i."""
        y = F.relu(self.expand(window.transpose(1, 2)))  # (N, hidden, C)
        return self.project(self.dropout(y)).transpose(1, 2)


class ChunkFFTBlock(nn.Module):
    """One decoder FFT block: chunked relative attention + causal conv FF."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        kernel_size: int,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.conv_context = kernel_size - 1
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = RelPositionAttention(dim, num_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = CausalConvFeedForward(dim, ffn_dim, kernel_size, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward_flat(
        self,
        x: Tensor,
        layout: ChunkLayout,
        positions: Tensor,
        caches: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor] | None]:
        """All chunks of a batch at once, optionally after cached frames.

        Args:
            x: (F, D) frames of all streams, stream-major.
            layout: from ``build_chunk_layout`` with R = 0 and K1 conv context
                (and cache rows L and K1 when ``caches`` is given).
            positions: (P, D) ``relative_position_table(C, L, 0, D)``.
            caches: keys, values (B, L, D) and conv inputs (B, K1, D) of the
                frames before each stream's first one, or None.

        Returns:
            (F, D), and with ``caches`` the new caches (same shapes).
        """
        key_cache, value_cache, conv_cache = caches or (None, None, None)
        normed = self.attention_norm(x)
        keys, values = self.attention.project_keys_values(normed)  # (F, D) each
        queries = self.attention.project_queries(normed)[layout.query_index]  # (N,C,D)
        windows_k = gather_rows(key_cache, keys, layout.key_index, layout.key_valid)
        windows_v = gather_rows(value_cache, values, layout.key_index, layout.key_valid)
        attended = self.attention.attend(
            queries, windows_k, windows_v, layout.key_valid, positions
        )  # (N, C, D)
        hidden = x[layout.query_index] + self.dropout(attended)  # (N, C, D)
        conv_in = self.ffn_norm(hidden).flatten(0, 1)[layout.output_index]  # (Q, D)
        window = gather_rows(
            conv_cache, conv_in, layout.conv_index, layout.conv_valid
        )  # (N, K1 + C, D)
        out = hidden + self.dropout(self.ffn(window))  # (N, C, D)
        out = out.flatten(0, 1)[layout.output_index]
        if caches is None:
            return out, None
        return out, (
            gather_rows(key_cache, keys, layout.new_key_index),
            gather_rows(value_cache, values, layout.new_key_index),
            gather_rows(conv_cache, conv_in, layout.new_conv_index),
        )

    def forward_chunk(
        self,
        x: Tensor,
        past_keys: Tensor,
        past_values: Tensor,
        past_conv: Tensor,
        key_valid: Tensor,
        conv_valid: Tensor,
        positions: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One chunk per stream with explicit caches.

        Args:
            x: (B, C, D) the chunk.
            past_keys, past_values: (B, L, D) caches of the last L frames.
            past_conv: (B, K1, D) conv inputs of the last K1 frames.
            key_valid: (B, L + C) bool; False on cache slots not filled yet.
            conv_valid: (B, K1) bool; idem for the conv cache.
            positions: (P, D) ``relative_position_table(C, L, 0, D)``.

        Returns:
            (B, C, D) output and the new caches (B, L, D), (B, L, D), (B, K1, D).
        """
        past = past_keys.shape[1]
        normed = self.attention_norm(x)
        new_keys, new_values = self.attention.project_keys_values(normed)  # (B,C,D)
        queries = self.attention.project_queries(normed)
        keys = torch.cat([past_keys, new_keys], dim=1)  # (B, L + C, D)
        values = torch.cat([past_values, new_values], dim=1)
        attended = self.attention.attend(queries, keys, values, key_valid, positions)
        hidden = x + self.dropout(attended)
        conv_in = self.ffn_norm(hidden)  # (B, C, D)
        past_conv = past_conv * conv_valid[..., None].to(past_conv.dtype)
        window = torch.cat([past_conv, conv_in], dim=1)  # (B, K1 + C, D)
        out = hidden + self.dropout(self.ffn(window))
        total = keys.shape[1]
        return (
            out,
            keys[:, total - past :],
            values[:, total - past :],
            window[:, window.shape[1] - self.conv_context :],
        )


class IncrementalDecoder(nn.Module):
    """Stack of chunked FFT blocks, then LayerNorm and a linear map to mels."""

    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        kernel_size: int,
        mel_dim: int,
        chunk_size: int,
        past_context: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.chunk_size = chunk_size
        self.past_context = past_context
        self.conv_context = kernel_size - 1
        self.blocks = nn.ModuleList(
            ChunkFFTBlock(
                dim, num_heads, ffn_dim, kernel_size, dropout, attention_dropout
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.to_mel = nn.Linear(dim, mel_dim)

    def _decode_flat(
        self, x: Tensor, lengths: Tensor, chunk_size: int, past_context: int
    ) -> Tensor:
        batch, frames, _ = x.shape
        valid = padding_mask(lengths, frames)  # (B, T)
        flat = x[valid]  # (F, D) stream-major
        zeros = torch.zeros_like(lengths)
        layout = build_chunk_layout(
            lengths,
            lengths,
            zeros,
            chunk_size,
            past_context,
            0,
            self.conv_context,
            0,
            0,
            device=x.device,
        )
        positions = relative_position_table(
            chunk_size, past_context, 0, self.dim, device=x.device
        )
        for block in self.blocks:
            flat, _ = block.forward_flat(flat, layout, positions)
        mel_flat = self.to_mel(self.norm(flat))  # (F, M)
        out = mel_flat.new_zeros(batch, frames, mel_flat.shape[-1])
        out[valid] = mel_flat
        return out

    def forward(
        self,
        x: Tensor,
        lengths: Tensor,
        chunk_size: int | None = None,
        past_context: int | None = None,
    ) -> Tensor:
        """Chunk-masked decode of whole sequences (the streaming result).

        Args:
            x: (B, T, D) length-regulated encoder frames.
            lengths: (B,) valid frames per stream.
            chunk_size, past_context: override C and L (e.g. to train one
                model for several streaming settings); default the model's.

        Returns:
            (B, T, M) log-mel, zeros past each length.
        """
        if int(lengths.max()) == 0:
            return x.new_zeros(*x.shape[:2], self.to_mel.out_features)
        return self._decode_flat(
            x,
            lengths.clamp(min=1),
            self.chunk_size if chunk_size is None else chunk_size,
            self.past_context if past_context is None else past_context,
        ).masked_fill(~padding_mask(lengths, x.shape[1])[..., None], 0.0)

    def forward_full_context(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Unconstrained decode: every frame attends to the whole sequence.

        Same weights and causal convs; one chunk covers each whole stream.
        For measuring what the chunk mask costs (``chunk_context_distance``).

        Args:
            x: (B, T, D); lengths: (B,).

        Returns:
            (B, T, M).
        """
        if int(lengths.max()) == 0:
            return x.new_zeros(*x.shape[:2], self.to_mel.out_features)
        return self._decode_flat(x, lengths.clamp(min=1), int(lengths.max()), 0)

    def init_state(
        self,
        batch: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> DecoderState:
        """Empty state for ``batch`` streams (all slots invalid)."""
        reference = self.to_mel.weight
        device = reference.device if device is None else device
        dtype = reference.dtype if dtype is None else dtype
        layers = len(self.blocks)
        return DecoderState(
            keys=torch.zeros(
                layers, batch, self.past_context, self.dim, device=device, dtype=dtype
            ),
            values=torch.zeros(
                layers, batch, self.past_context, self.dim, device=device, dtype=dtype
            ),
            conv=torch.zeros(
                layers, batch, self.conv_context, self.dim, device=device, dtype=dtype
            ),
            processed=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def forward_chunk(
        self, x: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState]:
        """Decode the next frames of every stream: one chunk or several.

        Every call but a stream's last must pass a whole number of chunks
        (``chunk_size`` frames each), so that chunks fall where ``forward``
        puts them; the last may pass any number. One chunk runs on a plain
        concatenation with the caches (the path ONNX export traces); several
        chunks run at once through a chunk layout over the caches, with the
        same result as one call per chunk and better throughput.

        Args:
            x: (B, C', D) with C' >= 1, all streams the same C'.
            state: from ``init_state`` or the previous call.

        Returns:
            (B, C', M) log-mel and the new state.
        """
        if x.shape[1] > self.chunk_size:
            return self._forward_chunks(x, state)
        chunk = x.shape[1]
        if chunk < 1:
            raise ValueError("forward_chunk needs at least one frame")
        past, conv_past = self.past_context, self.conv_context
        processed = state.processed
        slots = torch.arange(past, device=x.device)[None, :]
        cache_valid = slots >= (past - processed[:, None])  # (B, L)
        key_valid = torch.cat(
            [cache_valid, cache_valid.new_ones(x.shape[0], chunk)], dim=1
        )  # (B, L + C')
        conv_slots = torch.arange(conv_past, device=x.device)[None, :]
        conv_valid = conv_slots >= (conv_past - processed[:, None])  # (B, K1)
        positions = relative_position_table(chunk, past, 0, self.dim, device=x.device)
        keys, values, convs = [], [], []
        for i, block in enumerate(self.blocks):
            x, k, v, c = block.forward_chunk(
                x,
                state.keys[i],
                state.values[i],
                state.conv[i],
                key_valid,
                conv_valid,
                positions,
            )
            keys.append(k)
            values.append(v)
            convs.append(c)
        mel = self.to_mel(self.norm(x))
        new_state = DecoderState(
            keys=torch.stack(keys),
            values=torch.stack(values),
            conv=torch.stack(convs),
            processed=processed + chunk,
        )
        return mel, new_state

    def _forward_chunks(
        self, x: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState]:
        """Several chunks per stream in one pass (see ``forward_chunk``)."""
        batch, frames, dim = x.shape
        counts = torch.full((batch,), frames, dtype=torch.long)
        layout = build_chunk_layout(
            counts,
            counts,
            state.processed.cpu(),
            self.chunk_size,
            self.past_context,
            0,
            self.conv_context,
            self.past_context,
            self.conv_context,
            device=x.device,
        )
        positions = relative_position_table(
            self.chunk_size, self.past_context, 0, dim, device=x.device
        )
        flat = x.reshape(batch * frames, dim)
        keys, values, convs = [], [], []
        for i, block in enumerate(self.blocks):
            caches = (state.keys[i], state.values[i], state.conv[i])
            flat, new = block.forward_flat(flat, layout, positions, caches)
            assert new is not None
            keys.append(new[0])
            values.append(new[1])
            convs.append(new[2])
        mel = self.to_mel(self.norm(flat)).view(batch, frames, -1)
        return mel, DecoderState(
            keys=torch.stack(keys),
            values=torch.stack(values),
            conv=torch.stack(convs),
            processed=state.processed + frames,
        )


class ContextDistance(NamedTuple):
    l1: float  # mean |chunked - full| over valid frames and mel bins
    mse: float  # mean squared difference


@torch.no_grad()
def chunk_context_distance(
    decoder: IncrementalDecoder, x: Tensor, lengths: Tensor
) -> ContextDistance:
    """How far the chunk-masked (streaming) decode is from a full-context one.

    Both decodes use the same weights and inputs; only the attention context
    differs. A model trained with the chunk mask gives a distance that says
    how much of its output relies on the restricted context; a small value
    also means offline and streaming synthesis sound alike.

    Args:
        x: (B, T, D) decoder inputs; lengths: (B,).
    """
    valid = padding_mask(lengths, x.shape[1])[..., None]
    chunked = decoder(x, lengths)
    full = decoder.forward_full_context(x, lengths)
    diff = (chunked - full).float() * valid
    count = valid.sum().clamp(min=1) * chunked.shape[-1]
    return ContextDistance(
        l1=float(diff.abs().sum() / count), mse=float(diff.square().sum() / count)
    )
