"""Chunk layouts as numpy index arrays (no torch): shared by the PyTorch
model and the ONNX Runtime back end, which feeds them to exported graphs.

See ``speech.core.masks`` for the geometry and ``ChunkLayout`` for what each
array means. Letters: B streams, N chunks, C chunk size, W window.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GRAPH_LAYOUT_FIELDS", "LAYOUT_FIELDS", "chunk_layout_arrays"]

LAYOUT_FIELDS = (
    "query_index",
    "query_valid",
    "key_index",
    "key_valid",
    "conv_index",
    "conv_valid",
    "output_index",
    "new_key_index",
    "new_conv_index",
    "num_queries",
)
# the arrays an exported layer graph takes (ASR layers, the TTS multi-chunk
# decoder): the rest are for the host (query_valid, num_queries)
GRAPH_LAYOUT_FIELDS = tuple(
    f for f in LAYOUT_FIELDS if f not in ("num_queries", "query_valid")
)


def chunk_layout_arrays(
    num_frames: np.ndarray,
    num_queries: np.ndarray,
    processed: np.ndarray,
    chunk_size: int,
    left_context: int,
    right_context: int,
    conv_context: int,
    key_cache_rows: int,
    conv_cache_rows: int,
) -> dict[str, np.ndarray]:
    """Index arrays that turn a flat frame sequence into chunk windows.

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

    Returns:
        int64 index arrays and bool validity arrays named as ``LAYOUT_FIELDS``.

    Example: one stream of 5 frames, C=2, L=1, R=1, no cache. Chunks [0,1],
    [2,3], [4,pad]; the key window of chunk 1 is frames 1..4:
        >>> lay = chunk_layout_arrays(np.array([5]), np.array([5]),
        ...     np.array([0]), 2, 1, 1, 1, 0, 0)
        >>> lay["key_index"][1].tolist(), lay["key_valid"][2].tolist()
        ([1, 2, 3, 4], [True, True, False, False])
    """
    num_frames = np.asarray(num_frames, dtype=np.int64).reshape(-1)
    num_queries = np.asarray(num_queries, dtype=np.int64).reshape(-1)
    processed = np.asarray(processed, dtype=np.int64).reshape(-1)
    batch = num_frames.size
    size = chunk_size
    chunks_per_stream = (num_queries + size - 1) // size  # (B,)
    stream_of_chunk = np.repeat(np.arange(batch), chunks_per_stream)
    first_chunk = np.cumsum(chunks_per_stream) - chunks_per_stream  # (B,)
    chunk_start = (
        np.arange(stream_of_chunk.size) - first_chunk[stream_of_chunk]
    ) * size
    segment_start = np.cumsum(num_frames) - num_frames  # (B,) rows in x

    key_cached = np.minimum(processed, key_cache_rows)
    conv_cached = np.minimum(processed, conv_cache_rows)
    key_base = batch * key_cache_rows
    conv_base = batch * conv_cache_rows

    def key_rows(stream: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = (pos >= -key_cached[stream]) & (pos < num_frames[stream])
        rows = np.where(
            pos < 0,
            stream * key_cache_rows + key_cache_rows + pos,
            key_base + segment_start[stream] + pos,
        )
        return np.maximum(rows, 0) * valid, valid

    query_offset = np.cumsum(num_queries) - num_queries  # (B,) rows in the output

    def conv_rows(stream: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = (pos >= -conv_cached[stream]) & (pos < num_queries[stream])
        rows = np.where(
            pos < 0,
            stream * conv_cache_rows + conv_cache_rows + pos,
            conv_base + query_offset[stream] + pos,
        )
        return np.maximum(rows, 0) * valid, valid

    s = stream_of_chunk[:, None]
    query_pos = chunk_start[:, None] + np.arange(size)[None, :]
    query_valid = query_pos < num_queries[s]
    query_index = (segment_start[s] + query_pos) * query_valid

    window = np.arange(-left_context, size + right_context)[None, :]
    key_index, key_valid = key_rows(s, chunk_start[:, None] + window)

    conv_window = np.arange(-conv_context, size)[None, :]
    conv_index, conv_valid = conv_rows(s, chunk_start[:, None] + conv_window)

    output_stream = np.repeat(np.arange(batch), num_queries)
    output_pos = np.arange(output_stream.size) - query_offset[output_stream]
    output_index = first_chunk[output_stream] * size + output_pos

    b = np.arange(batch)[:, None]
    new_key_index, _ = key_rows(
        np.broadcast_to(b, (batch, left_context)),
        num_queries[:, None] + np.arange(-left_context, 0)[None, :],
    )
    new_conv_index, _ = conv_rows(
        np.broadcast_to(b, (batch, conv_context)),
        num_queries[:, None] + np.arange(-conv_context, 0)[None, :],
    )
    arrays = {
        "query_index": query_index,
        "query_valid": query_valid,
        "key_index": key_index,
        "key_valid": key_valid,
        "conv_index": conv_index,
        "conv_valid": conv_valid,
        "output_index": output_index,
        "new_key_index": new_key_index,
        "new_conv_index": new_conv_index,
        "num_queries": num_queries,
    }
    return {
        name: value.astype(bool if value.dtype == bool else np.int64, copy=False)
        for name, value in arrays.items()
    }
