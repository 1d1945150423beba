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

import numpy as np
import torch
from torch import Tensor

from speech.core.layout import chunk_layout_arrays

__all__ = [
    "ChunkLayout",
    "build_chunk_layout",
    "build_dense_layout",
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
    conv_index: Tensor  # (N, K2 + C) rows of [conv cache; processed frames (Q)]
    conv_valid: Tensor  # (N, K2 + C) bool
    output_index: Tensor  # (Q,) rows of the (N*C) chunk outputs, stream-major
    new_key_index: Tensor  # (B, L) rows of [key cache; keys of x]
    new_conv_index: Tensor  # (B, K2) rows of [conv cache; processed frames (Q)]
    num_queries: Tensor  # (B,) queries processed per stream
    chunk_size: int
    left_context: int
    right_context: int
    attention_mask: Tensor | None = None  # (C, W) extra mask of a dense layout

    @property
    def query_rows(self) -> Tensor:
        """(Q,) rows of x of the processed frames, stream-major."""
        return self.query_index.flatten()[self.output_index]


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
    """``chunk_layout_arrays`` as tensors on ``device`` (see its docstring).

    Example: one stream of 5 frames, C=2, L=1, R=1, no cache. Chunks [0,1],
    [2,3], [4,pad]; the key window of chunk 1 is frames 1..4:
        >>> lay = build_chunk_layout(torch.tensor([5]), torch.tensor([5]),
        ...     torch.tensor([0]), 2, 1, 1, 1, 0, 0)
        >>> lay.key_index[1].tolist(), lay.key_valid[2].tolist()
        ([1, 2, 3, 4], [True, True, False, False])
    """
    arrays = chunk_layout_arrays(
        torch.as_tensor(num_frames).cpu().numpy(),
        torch.as_tensor(num_queries).cpu().numpy(),
        torch.as_tensor(processed).cpu().numpy(),
        chunk_size,
        left_context,
        right_context,
        conv_context,
        key_cache_rows,
        conv_cache_rows,
    )
    tensors = {
        name: torch.from_numpy(value).to(device) for name, value in arrays.items()
    }
    return ChunkLayout(
        **tensors,
        chunk_size=chunk_size,
        left_context=left_context,
        right_context=right_context,
    )


def build_dense_layout(
    lengths: Tensor,
    chunk_size: int,
    left_context: int,
    right_context: int,
    device: torch.device | None = None,
) -> ChunkLayout:
    """An attention layout with one query block per stream (T = the longest
    stream) masked by ``chunk_attention_mask``: the same attention as the
    chunk windows, cheaper when the window L + C + R exceeds T (short
    utterances in training). No caches; pair it with a chunk layout for the
    convolution and use ``relative_position_table(T, 0, 0, D)``.
    """
    lengths = torch.as_tensor(lengths).cpu()
    longest = int(lengths.max())
    arrays = chunk_layout_arrays(
        lengths.numpy(),
        lengths.numpy(),
        np.zeros(lengths.numel(), dtype=np.int64),
        longest,
        0,
        0,
        0,
        0,
        0,
    )
    tensors = {
        name: torch.from_numpy(value).to(device) for name, value in arrays.items()
    }
    mask = chunk_attention_mask(
        longest, chunk_size, left_context, right_context, device
    )
    return ChunkLayout(
        **tensors,
        chunk_size=longest,
        left_context=0,
        right_context=0,
        attention_mask=mask,
    )
