"""The chunk-attention core shared by the recognizer and the synthesizer."""

from speech.core.attention import RelPositionAttention, relative_position_table
from speech.core.layers import ChunkConvolution, FeedForward, gather_rows
from speech.core.masks import (
    ChunkLayout,
    build_chunk_layout,
    chunk_attention_mask,
    padding_mask,
)

__all__ = [
    "ChunkConvolution",
    "ChunkLayout",
    "FeedForward",
    "RelPositionAttention",
    "build_chunk_layout",
    "chunk_attention_mask",
    "gather_rows",
    "padding_mask",
    "relative_position_table",
]
