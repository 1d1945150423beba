"""Building blocks shared by the chunked models.

Letters: N chunks, C chunk size, K2 frames of left convolution context,
D model width, F flat frames, S cache slots, B streams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ChunkConvolution", "FeedForward", "gather_rows", "take_rows"]


def take_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` for an integer ``index`` of any shape: (..., *x.shape[1:]).

    Done with ``index_select``, whose backward adds the gradient rows back in
    place; plain advanced indexing sorts the indices to accumulate them, which
    took 40 % of a training step's GPU time in ``torch.profiler``. ONNX
    export keeps the plain form (one Gather with the index's own shape).
    """
    if torch.onnx.is_in_onnx_export():
        return x[index]
    return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])


def gather_rows(
    cache: Tensor | None, rows: Tensor, index: Tensor, valid: Tensor | None = None
) -> Tensor:
    """Rows of ``[cache of every stream; rows]`` picked by ``index``.

    Args:
        cache: (B, S, D) per-stream cache, or None for no cache rows.
        rows: (M, D) this call's rows.
        index: (...) int64 rows of the concatenated buffer (cache rows first).
        valid: (...) bool; rows where it is False come back as zeros.

    Returns:
        (..., D).
    """
    buffer = rows if cache is None else torch.cat([cache.flatten(0, 1), rows], dim=0)
    picked = take_rows(buffer, index)
    if valid is not None:
        picked = picked * valid[..., None].to(picked.dtype)
    return picked


class FeedForward(nn.Module):
    """Pre-norm position-wise feed-forward: LN -> Linear -> SiLU -> Linear."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden_dim)
        self.down = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        return self.dropout(self.down(self.dropout(F.silu(self.up(self.norm(x))))))


class ChunkConvolution(nn.Module):
    """Conformer convolution module limited to the chunk on the right.

    pointwise (D -> 2D) -> GLU -> depthwise (kernel K, odd) -> LN -> SiLU ->
    pointwise. The depthwise step of frame i sees the GLU outputs of frames
    i - K2 .. i + K2 (K2 = K // 2) but never past the end of its chunk: frames
    beyond the chunk read as zeros. Its left context comes from earlier chunks
    or from a cache of K2 GLU outputs, so it streams exactly.
    """

    def __init__(self, dim: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.context = kernel_size // 2
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, groups=dim)
        self.depthwise_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def gate(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D): the GLU outputs that the depthwise step reads."""
        return F.glu(self.pointwise_in(self.norm(x)), dim=-1)

    def mix(self, window: Tensor) -> Tensor:
        """Depthwise step and output projection over chunk windows.

        Args:
            window: (N, K2 + C, D) GLU outputs [K2 left context | C chunk],
                zeros where a frame does not exist.

        Returns:
            (N, C, D).
        """
        y = F.pad(window.transpose(1, 2), (0, self.context))  # (N, D, K2 + C + K2)
        y = self.depthwise(y).transpose(1, 2)  # (N, C, D)
        y = F.silu(self.depthwise_norm(y))
        return self.dropout(self.pointwise_out(y))
