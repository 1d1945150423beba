"""Chunk masks and chunk layouts: pure functions shared by ASR and TTS.

Letters used in this file: B streams (or utterances), T frames, C chunk size,
L left context, R right context (all in frames of the attention's own rate),
N chunks, W = L + C + R key window, K2 = half the convolution kernel.

The attention geometry is the ChunkFormer one: frames are grouped into chunks
of C frames counted from the start of each stream; every query of chunk j sees
the keys of the frames [j*C - L, j*C + C + R) of the same layer input. Because
the right-context frames of layer i are outputs of layer i - 1, which saw their
own right context, the look-ahead of a stack grows with depth ("relative right
context"). With R = 0 there is no growth and the stack streams chunk by chunk.

The depthwise convolutions that follow attention are limited to the chunk on
the right (they never look past the chunk end) and see K2 frames on the left,
also across chunk boundaries. This keeps streaming exact with fixed caches.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "ChunkLayout",
    "build_chunk_layout",
    "chunk_attention_mask",
    "padding_mask",
]


def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Valid-frame mask of a padded batch.

    Args:
        lengths: (B,) number of valid frames per row.
        max_len: width of the mask; defaults to ``lengths.max()``.

    Returns:
        (B, T) bool, True on valid frames.

    Example:
        >>> padding_mask(torch.tensor([2, 4]))
        tensor([[ True,  True, False, False],
                [ True,  True,  True,  True]])
    """
    width = int(lengths.max()) if max_len is None else max_len
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def chunk_attention_mask(
    num_frames: int,
    chunk_size: int,
    left_context: int,
    right_context: int,
    device: torch.device | None = None,
) -> Tensor:
    """Dense (T, T) mask of which key each query may see, for one layer.

    Query t belongs to chunk j = t // C and sees keys k with
    ``j*C - L <= k < j*C + C + R``.

    Returns:
        (T, T) bool, True where query (row) may attend to key (column).

    Example (T=6, C=2, L=1, R=1):
        >>> chunk_attention_mask(6, 2, 1, 1).int()
        tensor([[1, 1, 1, 0, 0, 0],
                [1, 1, 1, 0, 0, 0],
                [0, 1, 1, 1, 1, 0],
                [0, 1, 1, 1, 1, 0],
                [0, 0, 0, 1, 1, 1],
                [0, 0, 0, 1, 1, 1]], dtype=torch.int32)
    """
    positions = torch.arange(num_frames, device=device)
    chunk_start = positions // chunk_size * chunk_size  # (T,)
    low = chunk_start - left_context
    high = chunk_start + chunk_size + right_context
    keys = positions[None, :]
    return (keys >= low[:, None]) & (keys < high[:, None])


class ChunkLayout(NamedTuple):
    """Where every chunk of a call finds its queries, keys and conv inputs.

    A call works on a flat frame sequence ``x`` of shape (F, D): the frames of
    B streams concatenated, stream b contributing ``num_frames[b]`` frames of
    which the first ``num_queries[b]`` are processed (the rest only serve as
    right context). Caches hold the frames before each stream's first frame.
    Every index below points into a flat buffer made of the cache rows of all
    streams first (``B * cache_rows`` rows) followed by the call's own rows.
    """

    query_index: Tensor  # (N, C) rows of x holding each chunk's queries
    query_valid: Tensor  # (N, C) bool, False on padding past a stream's end
    key_index: Tensor  # (N, W) rows of [key cache; keys of x]
    key_valid: Tensor  # (N, W) bool
    conv_index: Tensor  # (N, K2 + C) rows of [conv cache; chunk outputs]
    conv_valid: Tensor  # (N, K2 + C) bool
    output_index: Tensor  # (Q,) rows of the (N*C) chunk outputs, stream-major
    new_key_index: Tensor  # (B, L) rows of [key cache; keys of x]
    new_conv_index: Tensor  # (B, K2) rows of [conv cache; chunk outputs]
    num_queries: Tensor  # (B,) queries processed per stream
    chunk_size: int
    left_context: int
    right_context: int


def build_chunk_layout(
    num_frames: Tensor,
    num_queries: Tensor,
    processed: Tensor,
    chunk_size: int,
    left_context: int,
    right_context: int,
    conv_context: int,
    key_cache_rows: int,
    conv_cache_rows: int,
    device: torch.device | None = None,
) -> ChunkLayout:
    """Index tensors that turn a flat frame sequence into chunk windows.

    Args:
        num_frames: (B,) frames of each stream present in this call.
        num_queries: (B,) frames processed as queries (a multiple of C unless
            the stream ends in this call); ``num_queries <= num_frames``.
        processed: (B,) frames processed before this call; the caches hold the
            last ``min(cache_rows, processed)`` of them.
        chunk_size, left_context, right_context: C, L, R.
        conv_context: K2, frames the convolution sees left of each frame.
        key_cache_rows: rows per stream in the key/value cache (0 for none).
        conv_cache_rows: rows per stream in the convolution cache (0 for none).

    Example: one stream of 5 frames, C=2, L=1, R=1, no cache. Chunks [0,1],
    [2,3], [4,pad]; the key window of chunk 1 is frames 1..4:
        >>> lay = build_chunk_layout(torch.tensor([5]), torch.tensor([5]),
        ...     torch.tensor([0]), 2, 1, 1, 1, 0, 0)
        >>> lay.key_index[1].tolist(), lay.key_valid[2].tolist()
        ([1, 2, 3, 4], [True, True, False, False])
    """
    cpu = torch.device("cpu")
    num_frames = num_frames.to(cpu, torch.long)
    num_queries = num_queries.to(cpu, torch.long)
    processed = processed.to(cpu, torch.long)
    batch = num_frames.numel()
    size = chunk_size
    chunks_per_stream = (num_queries + size - 1) // size  # (B,)
    stream_of_chunk = torch.repeat_interleave(torch.arange(batch), chunks_per_stream)
    first_chunk = torch.cumsum(chunks_per_stream, 0) - chunks_per_stream  # (B,)
    chunk_start = (
        torch.arange(stream_of_chunk.numel()) - first_chunk[stream_of_chunk]
    ) * size
    segment_start = torch.cumsum(num_frames, 0) - num_frames  # (B,) rows in x

    key_cached = torch.clamp(processed, max=key_cache_rows)
    conv_cached = torch.clamp(processed, max=conv_cache_rows)
    key_base = batch * key_cache_rows
    conv_base = batch * conv_cache_rows

    def key_rows(stream: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        valid = (pos >= -key_cached[stream]) & (pos < num_frames[stream])
        rows = torch.where(
            pos < 0,
            stream * key_cache_rows + key_cache_rows + pos,
            key_base + segment_start[stream] + pos,
        )
        return rows.clamp(min=0) * valid, valid

    def conv_rows(stream: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        valid = (pos >= -conv_cached[stream]) & (pos < num_queries[stream])
        # chunk outputs of stream b start at row first_chunk[b] * C, so frame
        # p of stream b is at first_chunk[b] * C + p whatever chunk holds it.
        rows = torch.where(
            pos < 0,
            stream * conv_cache_rows + conv_cache_rows + pos,
            conv_base + first_chunk[stream] * size + pos,
        )
        return rows.clamp(min=0) * valid, valid

    s = stream_of_chunk[:, None]
    query_pos = chunk_start[:, None] + torch.arange(size)[None, :]
    query_valid = query_pos < num_queries[s]
    query_index = (segment_start[s] + query_pos) * query_valid

    window = torch.arange(-left_context, size + right_context)[None, :]
    key_index, key_valid = key_rows(s, chunk_start[:, None] + window)

    conv_window = torch.arange(-conv_context, size)[None, :]
    conv_index, conv_valid = conv_rows(s, chunk_start[:, None] + conv_window)

    output_stream = torch.repeat_interleave(torch.arange(batch), num_queries)
    output_pos = (
        torch.arange(output_stream.numel())
        - (torch.cumsum(num_queries, 0) - num_queries)[output_stream]
    )
    output_index = first_chunk[output_stream] * size + output_pos

    b = torch.arange(batch)[:, None]
    new_key_index, _ = key_rows(
        b.expand(batch, left_context),
        num_queries[:, None] + torch.arange(-left_context, 0)[None, :],
    )
    new_conv_index, _ = conv_rows(
        b.expand(batch, conv_context),
        num_queries[:, None] + torch.arange(-conv_context, 0)[None, :],
    )
    target = device or cpu
    return ChunkLayout(
        query_index=query_index.to(target),
        query_valid=query_valid.to(target),
        key_index=key_index.to(target),
        key_valid=key_valid.to(target),
        conv_index=conv_index.to(target),
        conv_valid=conv_valid.to(target),
        output_index=output_index.to(target),
        new_key_index=new_key_index.to(target),
        new_conv_index=new_conv_index.to(target),
        num_queries=num_queries.to(target),
        chunk_size=chunk_size,
        left_context=left_context,
        right_context=right_context,
    )
