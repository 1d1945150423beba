"""Layer-pipelined encoding of inputs of unbounded length, whatever runs the
layers (numpy only, no torch).

Every layer keeps the frames of its input that it has not processed yet
(``pending``) and fixed-size caches of the frames before them. A layer can
process chunk j once its input holds the frames up to ``(j + 1) * C + R``, so
with R > 0 each layer runs behind the one below it; with R = 0 all layers
advance together. Memory is bounded by the block pushed in plus C + R frames
per layer, whatever the duration, and the output equals masked batching over
the whole input exactly.

A layer's chunk layout depends only on its frame and query counts and on how
many cached rows it has (``min(processed, max(L, K2))``), so a long input pushed
in equal blocks repeats the same few layouts: ``LayerPipeline`` builds each
once and reuses it. On a GPU that also removes the host-to-device copies (each
a stream synchronisation from pageable memory) from every layer call after the
first blocks.

``LayerPipeline`` holds that control; a subclass says how its arrays are
joined and how the subsampling, one layer (with its caches) and the CTC head
run: ``speech.asr.longform.EncoderPipeline`` (PyTorch) and
``speech.onnx.asr.OnnxPipeline`` (ONNX Runtime).

Letters: T input frames, T' encoder frames, D model width, M mel bins,
V vocabulary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar

from speech.asr.config import SUBSAMPLING, SUBSAMPLING_FIELD, ChunkGeometry

__all__ = ["LayerPipeline", "subsampled_frames", "subsampling_windows"]


class _Frames(Protocol):
    """What the pipeline needs of an array (a Tensor or an ndarray)."""

    @property
    def shape(self) -> Any: ...

    def __getitem__(self, index: Any) -> Any: ...


ArrayT = TypeVar("ArrayT", bound=_Frames)


def subsampled_frames(num_frames: int) -> int:
    """Encoder frames made from ``num_frames`` input frames (frame j reads
    input frames 8j .. 8j + 14)."""
    if num_frames < SUBSAMPLING_FIELD:
        return 0
    return (num_frames - SUBSAMPLING_FIELD) // SUBSAMPLING + 1


def subsampling_windows(count: int, max_frames: int) -> list[tuple[int, slice]]:
    """The input windows that make ``count`` encoder frames, at most
    ``max_frames`` per window: (encoder frames, input-frame slice) each.

    Example:
        >>> subsampling_windows(5, 2)
        [(2, slice(0, 23, None)), (2, slice(16, 39, None)), (1, slice(32, 47, None))]
    """
    windows = []
    for start in range(0, count, max_frames):
        stop = min(start + max_frames, count)
        first, last = start * SUBSAMPLING, (stop - 1) * SUBSAMPLING + SUBSAMPLING_FIELD
        windows.append((stop - start, slice(first, last)))
    return windows


class LayerPipeline(ABC, Generic[ArrayT]):
    """Encode one input pushed in blocks of features; emits CTC
    log-probabilities as soon as they are final.

    Args:
        geometry: chunk size and contexts in encoder frames.
        num_layers: encoder layers.
        features, frames: empty (0, M) and (0, D) arrays of the back end's
            type, dtype and device.
        conv_context: K2, frames each convolution sees left of a frame.
        max_subsampling_frames: encoder frames per subsampling window.
    """

    max_layouts = 32  # distinct layouts kept (a steady stream needs a few)

    def __init__(
        self,
        geometry: ChunkGeometry,
        num_layers: int,
        features: ArrayT,
        frames: ArrayT,
        conv_context: int,
        max_subsampling_frames: int = 1024,
    ) -> None:
        self.geometry = geometry
        self.conv_context = conv_context
        self.max_subsampling_frames = max_subsampling_frames
        self._layouts: dict[tuple[int, int, int], Any] = {}
        self.features = features  # (T, M) normalised, not subsampled yet
        self.pending = [frames] * num_layers  # (T_i, D) unprocessed, per layer
        self.processed = [0] * num_layers  # frames each layer has processed
        self.frames_out = 0

    # --- what a back end gives ------------------------------------------------

    @abstractmethod
    def _concat(self, parts: list[ArrayT]) -> ArrayT:
        """Join arrays along the first axis."""

    @abstractmethod
    def _normalize(self, features: ArrayT) -> ArrayT:
        """(T, M) raw features -> normalised, in the back end's dtype."""

    @abstractmethod
    def _subsample(self, features: ArrayT, count: int) -> ArrayT:
        """(T, M) normalised features -> their ``count`` (T', D) frames."""

    @abstractmethod
    def _run_layer(self, index: int, x: ArrayT, num_queries: int) -> ArrayT:
        """Layer ``index`` over its (F, D) input frames, of which the first
        ``num_queries`` are processed (the rest are right context), after
        ``processed[index]`` frames; updates its caches; -> (num_queries, D)."""

    @abstractmethod
    def _ctc(self, x: ArrayT) -> ArrayT:
        """(F, D) encoder output -> (F, V) float32 log-probabilities."""

    @abstractmethod
    def _build_layout(self, num_frames: int, num_queries: int, processed: int) -> Any:
        """The back end's chunk layout of one stream (cache rows L and K2)."""

    def _layout(self, index: int, num_frames: int, num_queries: int) -> Any:
        """Layer ``index``'s layout for this call, built once per distinct
        (frames, queries, cached rows) and reused."""
        cached = min(
            self.processed[index], max(self.geometry.left_context, self.conv_context)
        )
        key = (num_frames, num_queries, cached)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= self.max_layouts:
                self._layouts.pop(next(iter(self._layouts)))  # the oldest
            layout = self._build_layout(num_frames, num_queries, cached)
            self._layouts[key] = layout
        return layout

    # --- the pipeline ---------------------------------------------------------

    def push(self, features: ArrayT) -> ArrayT:
        """Add (T, M) raw features; returns (T'_ready, V) log-probabilities."""
        self.features = self._concat([self.features, self._normalize(features)])
        return self._advance(final=False)

    def flush(self) -> ArrayT:
        """End of input: process everything left; returns (T'_rest, V)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> ArrayT:
        g = self.geometry
        count = subsampled_frames(self.features.shape[0])
        new = self._subsample(self.features, count)
        self.features = self.features[count * SUBSAMPLING :]
        for i in range(len(self.pending)):
            pending = self._concat([self.pending[i], new])
            available = pending.shape[0]
            if final:
                queries = available
            else:
                queries = (
                    max(available - g.right_context, 0) // g.chunk_size * g.chunk_size
                )
            if queries == 0:
                self.pending[i] = pending
                new = pending[:0]
                continue
            new = self._run_layer(i, pending, queries)
            self.pending[i] = pending[queries:]
            self.processed[i] += queries
        self.frames_out += new.shape[0]
        return self._ctc(new)
