"""Configuration of the ChunkFormer recognizer: one source of truth for the
audio constants, the network size and the chunk geometry."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["AsrConfig", "ChunkGeometry"]

SUBSAMPLING = 8  # input (10 ms) frames per encoder (80 ms) frame
SUBSAMPLING_FIELD = 15  # input frames seen by one encoder frame
MAX_EDGE_PADDING = 5.0  # seconds, on each side


def check_edge_padding(value: tuple[float, float]) -> tuple[float, float]:
    """``(before, after)`` seconds of edge silence, checked."""
    before, after = (float(x) for x in value)
    if not (0 <= before <= MAX_EDGE_PADDING and 0 <= after <= MAX_EDGE_PADDING):
        raise ValueError(
            f"edge_padding must be two durations within 0..{MAX_EDGE_PADDING:g} s, "
            f"got {value!r}"
        )
    return before, after


@dataclass(frozen=True)
class ChunkGeometry:
    """Chunk size and contexts in encoder frames (80 ms each)."""

    chunk_size: int
    left_context: int
    right_context: int

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.left_context < 0 or self.right_context < 0:
            raise ValueError(
                "left_context and right_context must be >= 0, got "
                f"{self.left_context} and {self.right_context}"
            )

    def latency_seconds(self, num_layers: int, frame_seconds: float = 0.08) -> float:
        """Algorithmic latency: the chunk, the look-ahead that the right
        context adds at every layer, and the subsampling's own look-ahead
        (7 input frames + the 15 ms of the last 25 ms window)."""
        look_ahead = 0
        if self.right_context:
            look_ahead = self.right_context + max(
                self.chunk_size, self.right_context
            ) * (num_layers - 1)
        return (self.chunk_size + look_ahead) * frame_seconds + 0.085


@dataclass(frozen=True)
class AsrConfig:
    # audio front end
    sample_rate: int = 16000
    num_mel_bins: int = 80
    # network
    d_model: int = 192
    num_heads: int = 4
    ffn_dim: int = 768
    num_layers: int = 8
    conv_kernel: int = 15
    subsampling_channels: int = 192
    dropout: float = 0.1
    vocab_size: int = 256
    # default decoding geometries (encoder frames)
    offline: ChunkGeometry = field(default_factory=lambda: ChunkGeometry(64, 128, 64))
    streaming: ChunkGeometry = field(default_factory=lambda: ChunkGeometry(6, 64, 0))
    # silence (seconds) the recognizer adds before and after every input: the
    # subsampling drops up to 7 trailing 10 ms frames, and a sentence's last
    # word needs frames after it to be emitted (docs/asr_model_history.md, "Edges");
    # none before by default: there it gained full context little and cost
    # streaming on unseen voices. A leading part is rounded to whole encoder
    # frames (80 ms), so that word times move back by an exact number of frames
    edge_padding: tuple[float, float] = (0.0, 0.64)

    def __post_init__(self) -> None:
        check_edge_padding(self.edge_padding)

    @property
    def frame_seconds(self) -> float:
        return SUBSAMPLING * 0.01

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AsrConfig:
        data = dict(data)
        for key in ("offline", "streaming"):
            if isinstance(data.get(key), dict):
                data[key] = ChunkGeometry(**data[key])
        if isinstance(data.get("edge_padding"), list):
            data["edge_padding"] = tuple(data["edge_padding"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AsrConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_updates(self, **changes: Any) -> AsrConfig:
        return replace(self, **changes)
