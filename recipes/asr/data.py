"""Training data for the recognizer: utterances in memory, length-bucketed
batches by total audio duration, deterministic augmentation (a resumed run
sees exactly the batches and noises an uninterrupted one would).

Joined utterances (``join_fraction``): extra items made of two or three
utterances read one after another with a pause between them. A model trained
on single sentences only has never seen another sentence inside its
attention window, and long recordings put one there all the time; the
long-form WER of the stage-3 model was 1.4-3.4 points above the same
sentences decoded one by one (``recipes.asr.evaluate``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from recipes.asr.augment import AugmentConfig, augment_waveform
from recipes.common import Utterance, read_pcm16
from speech.asr.frontend import FbankConfig

__all__ = ["AsrDataset", "BucketBatchSampler", "collate", "training_loader"]

logger = logging.getLogger(__name__)

LOAD_GROUP = 256  # files per loading task


class AsrDataset(Dataset):
    """Items are addressed as ``(epoch, index)`` so augmentation is a pure
    function of them and of the seed."""

    def __init__(
        self,
        utterances: Sequence[Utterance],
        token_ids: Sequence[list[int]],
        sample_rate: int = 16000,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        load_threads: int = 16,
        augment_from_epoch: int = 0,
        join_fraction: float = 0.0,
        join_max_seconds: float = 25.0,
    ) -> None:
        self.utterances = list(utterances)
        self.tokens = [list(t) for t in token_ids]
        self.sample_rate = sample_rate
        self.augment = augment
        self.augment_from_epoch = augment_from_epoch
        self.seed = seed
        self.fbank = FbankConfig(sample_rate=sample_rate)
        # int16 keeps hours of audio in a few GB; files are read in groups,
        # so that handing out 100,000 single-file tasks does not cost more
        # than the reading
        paths = [u.audio for u in self.utterances]
        groups = [paths[i : i + LOAD_GROUP] for i in range(0, len(paths), LOAD_GROUP)]
        with ThreadPoolExecutor(load_threads) as pool:
            self.audio = [
                samples
                for group in pool.map(
                    lambda group: [read_pcm16(p, sample_rate) for p in group], groups
                )
                for samples in group
            ]
        self.durations = np.array([len(a) / sample_rate for a in self.audio])
        logger.info(
            "loaded %d utterances, %.1f hours",
            len(self.audio),
            self.durations.sum() / 3600,
        )
        self.joins = plan_joins(
            self.durations, join_fraction, join_max_seconds, sample_rate, seed
        )
        for parts, _ in self.joins:
            self.tokens.append([t for i in parts for t in self.tokens[i]])
        self.durations = np.concatenate(
            [
                self.durations,
                [
                    self.durations[list(parts)].sum() + sum(pauses) / sample_rate
                    for parts, pauses in self.joins
                ],
            ]
        )
        if self.joins:
            logger.info("%d joined utterances", len(self.joins))

    def __len__(self) -> int:
        return len(self.audio) + len(self.joins)

    def waveform(self, index: int) -> np.ndarray:
        """Item ``index``'s samples: an utterance, or past the last one, a
        joined utterance (its parts with silent pauses between them)."""
        if index < len(self.audio):
            return self.audio[index].astype(np.float32) / 32768.0
        parts, pauses = self.joins[index - len(self.audio)]
        pieces = [self.audio[parts[0]]]
        for part, pause in zip(parts[1:], pauses, strict=True):
            pieces += [np.zeros(pause, np.int16), self.audio[part]]
        return np.concatenate(pieces).astype(np.float32) / 32768.0

    def _babble(self, rng: np.random.Generator) -> np.ndarray:
        return self.waveform(int(rng.integers(0, len(self.audio))))

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The (augmented) waveform and the token ids of one utterance; the
        features are computed per batch on the training device."""
        epoch, index = key
        samples = self.waveform(index)
        if self.augment is not None and epoch >= self.augment_from_epoch:
            rng = np.random.default_rng([self.seed, epoch, index])
            samples = augment_waveform(
                samples, rng, self.augment, self.sample_rate, self._babble
            )
        return torch.from_numpy(samples), torch.tensor(self.tokens[index])


JOIN_PAUSE_SECONDS = (0.2, 1.5)


def plan_joins(
    durations: np.ndarray,
    fraction: float,
    max_seconds: float,
    sample_rate: int,
    seed: int,
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``fraction * len(durations)`` joins of 2-3 random utterances each
    (parts, pause samples between them), at most ``max_seconds`` long; a
    pure function of the seed, so resumed runs see the same items."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"join fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng([seed, 0x701])
    joins = []
    low, high = JOIN_PAUSE_SECONDS
    for _ in range(int(round(fraction * len(durations)))):
        parts = [int(rng.integers(len(durations)))]
        pauses: list[int] = []
        total = durations[parts[0]]
        for _ in range(int(rng.integers(1, 3))):
            part = int(rng.integers(len(durations)))
            pause = int(rng.uniform(low, high) * sample_rate)
            if total + pause / sample_rate + durations[part] > max_seconds:
                break
            parts.append(part)
            pauses.append(pause)
            total += pause / sample_rate + durations[part]
        if len(parts) > 1:
            joins.append((tuple(parts), tuple(pauses)))
    return joins


def collate(items: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    pad = torch.nn.utils.rnn.pad_sequence
    return {
        "waveforms": pad([w for w, _ in items], batch_first=True),
        "samples": torch.tensor([w.shape[0] for w, _ in items]),
        "tokens": pad([t for _, t in items], batch_first=True),
        "token_lengths": torch.tensor([t.shape[0] for _, t in items]),
    }


class BucketBatchSampler:
    """Batches of similar-length utterances holding at most
    ``max_seconds`` of audio each, shuffled per epoch from ``seed``.

    Iteration is a pure function of (seed, epoch, start): ``start`` skips
    the batches a resumed run has already trained on. Under DDP each rank
    takes every ``world_size``-th batch; all ranks see the same count.
    """

    def __init__(
        self,
        durations: np.ndarray,
        max_seconds: float,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_utterances: int = 512,
        sorted_epochs: int = 0,
    ) -> None:
        self.durations = durations
        self.max_seconds = max_seconds
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.max_utterances = max_utterances
        self.sorted_epochs = sorted_epochs
        self.epoch = 0
        self.start = 0

    def batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        # sort by duration with a little noise so buckets differ per epoch
        noisy = self.durations * rng.uniform(0.9, 1.1, len(self.durations))
        order = np.argsort(noisy)
        batches, current, longest = [], [], 0.0
        for index in order:
            longest = max(longest, self.durations[index])
            if current and (
                longest * (len(current) + 1) > self.max_seconds
                or len(current) >= self.max_utterances
            ):
                batches.append(current)
                current, longest = [], self.durations[index]
            current.append(int(index))
        if current:
            batches.append(current)
        if epoch >= self.sorted_epochs:  # SortaGrad: first epochs short to long
            rng.shuffle(batches)
        usable = len(batches) // self.world_size * self.world_size
        return batches[:usable]

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) // self.world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self.batches(self.epoch)
        for position in range(self.start, len(batches) // self.world_size):
            batch = batches[position * self.world_size + self.rank]
            yield [(self.epoch, i) for i in batch]


def training_loader(
    dataset: AsrDataset,
    sampler: BucketBatchSampler,
    workers: int,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    """The trainer's ``DataLoader``. Items are (epoch, index) keys that the
    sampler, in this process, hands out, so the workers hold no per-epoch
    state and live for the whole run: starting a few dozen of them at every
    epoch stalled 4-GPU runs for seconds at each epoch boundary."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=workers > 0,
        # its own generator: starting the workers must not draw from the
        # global RNG, which the checkpoint restores for SpecAugment
        generator=torch.Generator().manual_seed(seed),
    )
