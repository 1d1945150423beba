"""Where a recognizer's weights live, without importing torch (the ONNX
Runtime back end uses this to check the shipped export against them).

A model folder holds ``model.pt`` or the shards ``model-0000i-of-0000n.pt``
(each file under 16 MB), next to ``config.json`` and ``tokenizer.model``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = ["DEFAULT_MODEL_DIR", "shard_names", "weight_files", "weights_digest"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "asr"
SHARD = re.compile(r"model-(\d{5})-of-(\d{5})\.pt")


def shard_names(folder: Path, count: int) -> list[Path]:
    """The file names of a set of ``count`` shards."""
    return [folder / f"model-{i:05d}-of-{count:05d}.pt" for i in range(1, count + 1)]


def weight_files(folder: Path) -> tuple[Path | None, list[Path]]:
    """``model.pt`` (or None) and the shard files of a model folder."""
    single = folder / "model.pt"
    shards = sorted(p for p in folder.glob("model-*.pt") if SHARD.fullmatch(p.name))
    return (single if single.is_file() else None), shards


def weights_digest(folder: str | Path) -> str:
    """SHA-256 of a model folder's weight files (``model.pt`` or its shards,
    in order): what an export records of the weights it came from.
    ``FileNotFoundError`` when it has none."""
    single, shards = weight_files(Path(folder))
    if single is None and not shards:
        raise FileNotFoundError(f"{folder}: no weights (model.pt or shards)")
    digest = hashlib.sha256()
    for file in [single] if single is not None else shards:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
