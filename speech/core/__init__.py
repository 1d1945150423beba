"""The chunk-attention core shared by the recognizer and the synthesizer.

Names are imported on first use (PEP 562), so ``speech.core.layout`` (numpy
only) can be imported without torch by the ONNX Runtime back end.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speech.core.attention import RelPositionAttention, relative_position_table
    from speech.core.layers import (
        ChunkConvolution,
        FeedForward,
        gather_rows,
        take_rows,
    )
    from speech.core.masks import (
        ChunkLayout,
        build_chunk_layout,
        build_dense_layout,
        chunk_attention_mask,
        padding_mask,
    )

__all__ = [
    "ChunkConvolution",
    "ChunkLayout",
    "FeedForward",
    "RelPositionAttention",
    "build_chunk_layout",
    "build_dense_layout",
    "chunk_attention_mask",
    "gather_rows",
    "padding_mask",
    "relative_position_table",
    "take_rows",
]

_MODULES = {
    "RelPositionAttention": "attention",
    "relative_position_table": "attention",
    "ChunkConvolution": "layers",
    "FeedForward": "layers",
    "gather_rows": "layers",
    "take_rows": "layers",
    "ChunkLayout": "masks",
    "build_chunk_layout": "masks",
    "build_dense_layout": "masks",
    "chunk_attention_mask": "masks",
    "padding_mask": "masks",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'speech.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"speech.core.{_MODULES[name]}"), name)
    globals()[name] = value
    return value
