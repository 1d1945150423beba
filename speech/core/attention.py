"""Relative-position multi-head attention over chunk windows.

Letters: N chunks (batch of queries), H heads, C chunk size, W key window
(L + C + R), P relative distances (W + C - 1), D model width, E = D / H.

Scores follow Transformer-XL: ``(q + u) . k + (q + v) . W_pos p(i - j)`` with
learned per-head biases u, v and sinusoidal relative positions p. The content
term and the softmax run in ``scaled_dot_product_attention``; the position
term enters as its additive mask, so a fused kernel does the heavy work.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["RelPositionAttention", "relative_position_table"]

# On CUDA, attention runs on these fused kernels, not cuDNN's: cuDNN builds a
# graph for every new (chunks, window) shape, which made a bf16 long-form pass
# over one hour on shapes not seen before 4.6x slower (1.08 s vs 0.23 s on an
# H100: benchmarks/asr_profile.py --dtype bf16 --config small
# --warmup-seconds 60, with and without --sdpa); the memory-efficient kernel
# takes the additive mask. Read at every call (a benchmark may swap it).
CUDA_ATTENTION_BACKENDS = [
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]


def relative_position_table(
    chunk_size: int,
    left_context: int,
    right_context: int,
    dim: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Sinusoids of the query-key distances a chunk window can hold.

    Row r encodes the distance ``d = (L + C - 1) - r``; distances run from
    ``L + C - 1`` (a query at the chunk end, the oldest key) down to
    ``-(C + R - 1)`` (a query at the chunk start, the newest key).

    Returns:
        (P, D) with P = L + 2C + R - 1.

    Example: C=1, L=1, R=0 gives distances [1, 0]:
        >>> relative_position_table(1, 1, 0, 2)
        tensor([[0.8415, 0.5403],
                [0.0000, 1.0000]])
    """
    distance = torch.arange(
        left_context + chunk_size - 1,
        -(chunk_size + right_context),
        -1,
        device=device,
        dtype=torch.float32,
    )
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32)
        * (-math.log(10000.0) / dim)
    )
    angles = distance[:, None] * inv_freq[None, :]  # (P, D/2)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)
    return table.to(dtype)


def _skew(scores: Tensor, window: int) -> Tensor:
    """Pick, for query i and key w, the column of distance ``i - (w - L)``.

    scores: (..., C, P) with P = window + C - 1, column r holding distance
    ``(L + C - 1) - r``. Key w of query i needs column ``C - 1 - i + w``.
    After padding one column (width P + 1) that entry sits at flat offset
    ``(C - 1) + i * P + w``: a reshape and a slice, no gather (cheap, and it
    exports to ONNX as plain slicing).
    """
    chunk, positions = scores.shape[-2], scores.shape[-1]
    flat = F.pad(scores, (0, 1)).flatten(-2)
    flat = flat[..., chunk - 1 : chunk - 1 + chunk * positions]
    return flat.unflatten(-1, (chunk, positions))[..., :window]


class RelPositionAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions.

    Projections are split so callers can build key windows from caches:
    ``project_keys_values`` for every frame, ``project_queries`` for the
    frames processed, ``attend`` for the windows.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.position = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.pos_bias_u = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def project_keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(..., D) -> keys (..., D), values (..., D)."""
        return self.key_value(x).chunk(2, dim=-1)

    def project_queries(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        return self.query(x)

    def attend(
        self,
        queries: Tensor,
        keys: Tensor,
        values: Tensor,
        key_valid: Tensor,
        positions: Tensor,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Attention of each chunk's queries over its key window.

        Args:
            queries: (N, C, D) projected queries.
            keys, values: (N, W, D) projected keys and values of the window
                [L left | C chunk | R right].
            key_valid: (N, W) bool, False for keys that do not exist.
            positions: (P, D) from ``relative_position_table`` for the same
                C, L, R.
            mask: optional (C, W) bool applied to every chunk as well.

        Returns:
            (N, C, D).
        """
        n, chunk, _ = queries.shape
        window = keys.shape[1]
        h, e = self.num_heads, self.head_dim
        q = queries.view(n, chunk, h, e).transpose(1, 2)  # (N, H, C, E)
        k = keys.reshape(n, window, h, e).transpose(1, 2)  # (N, H, W, E)
        v = values.reshape(n, window, h, e).transpose(1, 2)
        p = self.position(positions.to(queries.dtype))
        p = p.view(-1, h, e).permute(1, 2, 0)  # (H, E, P)
        scale = 1.0 / math.sqrt(e)
        q_v = q + self.pos_bias_v[:, None, :].to(q.dtype)
        bias = _skew(torch.matmul(q_v, p), window) * scale  # (N, H, C, W)
        allowed = key_valid[:, None, None, :]  # (N, 1, 1, W)
        if mask is not None:
            allowed = allowed & mask[None, None]
        bias = bias.masked_fill(~allowed, float("-inf"))
        q_u = q + self.pos_bias_u[:, None, :].to(q.dtype)
        backends = sdpa_kernel(CUDA_ATTENTION_BACKENDS) if q.is_cuda else nullcontext()
        with backends:
            out = F.scaled_dot_product_attention(
                q_u,
                k,
                v,
                attn_mask=bias,
                dropout_p=self.dropout if self.training else 0.0,
                scale=scale,
            )  # (N, H, C, E)
        return self.out(out.transpose(1, 2).reshape(n, chunk, h * e))
