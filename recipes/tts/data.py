"""Synthesizer training data: corpus reading, cached features, bucketed batches.

Corpora: an LJSpeech-style folder (``metadata.csv`` with ``id|text`` or
``id|text|normalized text`` lines, audio in ``wavs/<id>.wav``) or a JSONL
manifest (one ``{"audio": path, "text": ...}`` per line, optional ``"id"``;
relative audio paths are relative to the manifest's folder). Audio is read
with the standard library's ``wave`` for 16-bit PCM (the GPU machine has no
soundfile) and resampled with torchaudio when its rate differs.

Features (``preprocess``): symbol ids, log-mel (T, M) in float16, f0 in Hz
and log energy (T,) on the mel grid, computed in parallel worker processes and
cached in one file; a later run with the same corpus and settings reuses it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recipes.common import read_wav, save_checkpoint
from speech.tts.audio import MelConfig, MelSpectrogram
from speech.tts.pitch import estimate_f0, log_energy

__all__ = [
    "CorpusItem",
    "Features",
    "bucket_batches",
    "collate",
    "preprocess",
    "read_corpus",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusItem:
    id: str
    audio: str  # absolute path
    text: str


def read_corpus(path: str | os.PathLike[str]) -> list[CorpusItem]:
    """Items of an LJSpeech-style folder or a JSONL manifest."""
    path = Path(path).resolve()
    if path.is_dir():
        metadata = path / "metadata.csv"
        if not metadata.is_file():
            raise FileNotFoundError(f"{path}: no metadata.csv (LJSpeech layout)")
        items = []
        with metadata.open(encoding="utf-8", newline="") as file:
            for number, row in enumerate(
                csv.reader(file, delimiter="|", quoting=csv.QUOTE_NONE), 1
            ):
                if not row or not row[0].strip():
                    continue
                if len(row) < 2:
                    raise ValueError(
                        f"{metadata}:{number}: expected id|text[|normalized]"
                    )
                text = row[2] if len(row) > 2 and row[2].strip() else row[1]
                items.append(
                    CorpusItem(
                        row[0], str(path / "wavs" / f"{row[0]}.wav"), text.strip()
                    )
                )
        return items
    items = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                audio = Path(row["audio"])
                if not audio.is_absolute():
                    audio = path.parent / audio
                item_id = str(row.get("id", audio.stem))
                items.append(CorpusItem(item_id, str(audio), str(row["text"]).strip()))
            except (ValueError, KeyError) as error:
                raise ValueError(
                    f"{path}:{number}: bad manifest line ({error})"
                ) from None
    return items


@dataclass
class Features:
    """Cached features of a corpus (lists aligned by item)."""

    ids: list[str]
    symbols: list[Tensor]  # (N,) int64
    mels: list[Tensor]  # (T, M) float16
    f0: list[Tensor]  # (T,) float32 Hz, 0 = unvoiced
    energy: list[Tensor]  # (T,) float32 log energy

    def __len__(self) -> int:
        return len(self.ids)

    def frame_lengths(self) -> np.ndarray:
        return np.array([m.shape[0] for m in self.mels])

    def subset(self, indices: Sequence[int]) -> Features:
        return Features(
            [self.ids[i] for i in indices],
            [self.symbols[i] for i in indices],
            [self.mels[i] for i in indices],
            [self.f0[i] for i in indices],
            [self.energy[i] for i in indices],
        )

    def pitch_stats(self) -> tuple[float, float]:
        """Mean and std of log-f0 over all voiced frames."""
        f0 = torch.cat(self.f0)
        log_f0 = torch.log(f0[f0 > 0].double())
        if log_f0.numel() < 2:
            return float(np.log(150.0)), 0.2
        return float(log_f0.mean()), float(log_f0.std().clamp(min=1e-3))

    def energy_stats(self) -> tuple[float, float]:
        energy = torch.cat(self.energy).double()
        return float(energy.mean()), float(energy.std().clamp(min=1e-3))


# --- preprocessing (runs in worker processes) -------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(
    mel: dict[str, Any],
    f0: tuple[float, float, float],
    text_to_ids: Callable[[str], list[int]],
) -> None:
    torch.set_num_threads(1)
    config = MelConfig(**mel)
    _WORKER.update(
        mel=MelSpectrogram(config), config=config, f0=f0, text_to_ids=text_to_ids
    )


def _extract(item: CorpusItem) -> dict[str, Any] | None:
    config: MelConfig = _WORKER["config"]
    try:
        ids = _WORKER["text_to_ids"](item.text)
        samples = read_wav(item.audio, config.sample_rate)
    except Exception as error:  # noqa: BLE001 - one bad item must not stop the corpus
        logger.warning("%s: skipped (%s)", item.id, error)
        return None
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
    with torch.no_grad():
        spectrum = _WORKER["mel"].magnitude(wave)  # (1, F, T)
        mel = torch.log(
            torch.clamp(_WORKER["mel"].banks @ spectrum, min=config.log_floor)
        )
        f0_min, f0_max, threshold = _WORKER["f0"]
        f0 = estimate_f0(wave, config, f0_min, f0_max, threshold)
        energy = log_energy(spectrum)
    return {
        "id": item.id,
        "symbols": np.asarray(ids, dtype=np.int16),
        "mel": mel[0].T.to(torch.float16).numpy(),
        "f0": f0[0].numpy(),
        "energy": energy[0].numpy(),
    }


def _fingerprint(
    items: Sequence[CorpusItem],
    mel: MelConfig,
    symbols: Sequence[str],
    f0: tuple[float, float, float],
) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([mel.to_json(), list(symbols), list(f0)]).encode())
    for item in items:
        try:
            stat = os.stat(item.audio)
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{item.id}|{item.audio}|{item.text}|{stamp}\n".encode())
    return digest.hexdigest()


def preprocess(
    items: Sequence[CorpusItem],
    cache_file: str | os.PathLike[str],
    text_to_ids: Callable[[str], list[int]],
    symbols: Sequence[str],
    mel: MelConfig | None = None,
    f0: tuple[float, float, float] = (60.0, 500.0, 0.2),
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Features:
    """Features of every usable item, from ``cache_file`` when it matches.

    Items are dropped (with a warning) when their audio or text cannot be
    read, their text gives no symbols, or they have fewer mel frames than
    symbols (no monotonic alignment exists).

    Args:
        text_to_ids: text -> symbol ids (a picklable module-level function).
        symbols: the symbol table (part of the cache key).
        f0: (f0_min, f0_max, voicing threshold) of ``estimate_f0``.
        workers: processes (default: all cores).
        progress: called with the number of items finished by each batch.
    """
    mel = mel or MelConfig()
    cache_file = Path(cache_file)
    key = _fingerprint(items, mel, symbols, f0)
    if cache_file.is_file():
        cached = torch.load(cache_file, map_location="cpu", weights_only=False)
        if cached.get("fingerprint") == key:
            logger.info(
                "features: reusing %s (%d items)", cache_file, len(cached["ids"])
            )
            return Features(
                cached["ids"],
                cached["symbols"],
                cached["mels"],
                cached["f0"],
                cached["energy"],
            )
    workers = workers or os.cpu_count() or 1
    records: list[dict[str, Any] | None] = []
    arguments = (json.loads(mel.to_json()), f0, text_to_ids)
    if workers == 1:
        threads = torch.get_num_threads()
        _init_worker(*arguments)
        try:
            for item in items:
                records.append(_extract(item))
                if progress is not None:
                    progress(1)
        finally:
            torch.set_num_threads(threads)  # the worker set-up pinned it to 1
    else:
        context = get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=arguments
        ) as pool:
            for record in pool.map(_extract, items, chunksize=16):
                records.append(record)
                if progress is not None:
                    progress(1)
    features = Features([], [], [], [], [])
    for record in records:
        if record is None:
            continue
        if len(record["symbols"]) == 0 or record["mel"].shape[0] < len(
            record["symbols"]
        ):
            logger.warning(
                "%s: skipped (%d symbols, %d frames)",
                record["id"],
                len(record["symbols"]),
                record["mel"].shape[0],
            )
            continue
        features.ids.append(record["id"])
        features.symbols.append(torch.from_numpy(record["symbols"].astype(np.int64)))
        features.mels.append(torch.from_numpy(record["mel"]))
        features.f0.append(torch.from_numpy(record["f0"]))
        features.energy.append(torch.from_numpy(record["energy"]))
    save_checkpoint(
        cache_file,
        {
            "fingerprint": key,
            "ids": features.ids,
            "symbols": features.symbols,
            "mels": features.mels,
            "f0": features.f0,
            "energy": features.energy,
        },
    )
    return features


# --- batching ----------------------------------------------------------------


def bucket_batches(
    lengths: Sequence[int] | np.ndarray,
    max_frames: int,
    max_batch: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[int]]:
    """This rank's batches of one epoch: items of similar length together.

    Lengths are jittered by up to 10 % (seeded by ``seed`` and ``epoch``) and
    sorted, then cut into batches of at most ``max_batch`` items whose padded
    size ``count * longest`` stays within ``max_frames``; batch order is
    shuffled. A pure function of its arguments, so a resumed run sees the
    same batches. Every rank gets the same number of batches.
    """
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths, dtype=np.float64)
    order = np.argsort(
        lengths * rng.uniform(0.9, 1.1, size=len(lengths)), kind="stable"
    )
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0.0
    for index in order:
        size = max(longest, lengths[index])
        if current and (
            (len(current) + 1) * size > max_frames or len(current) >= max_batch
        ):
            batches.append(current)
            current, size = [], lengths[index]
        current.append(int(index))
        longest = size
    if current:
        batches.append(current)
    batches = [batches[i] for i in rng.permutation(len(batches))]
    if world_size > 1:
        while len(batches) < world_size:
            batches = batches + batches
        batches = batches[: len(batches) - len(batches) % world_size][rank::world_size]
    return batches


def collate(features: Features, indices: Sequence[int]) -> dict[str, Tensor]:
    """Padded batch: symbols (B, N), mel (B, T, M), f0 / energy (B, T), lengths."""
    pad = torch.nn.utils.rnn.pad_sequence
    symbols = [features.symbols[i] for i in indices]
    mels = [features.mels[i] for i in indices]
    return {
        "symbols": pad(symbols, batch_first=True),
        "symbol_lengths": torch.tensor([s.shape[0] for s in symbols]),
        "mel": pad(mels, batch_first=True).float(),
        "mel_lengths": torch.tensor([m.shape[0] for m in mels]),
        "f0": pad([features.f0[i] for i in indices], batch_first=True),
        "energy": pad([features.energy[i] for i in indices], batch_first=True),
    }
