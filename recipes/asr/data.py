"""Training data for the recognizer: utterances in memory, length-bucketed
batches by total audio duration, deterministic augmentation (a resumed run
sees exactly the batches and noises an uninterrupted one would)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from recipes.asr.augment import AugmentConfig, augment_waveform
from recipes.common import Utterance, read_wav
from speech.asr.frontend import FbankConfig

__all__ = ["AsrDataset", "BucketBatchSampler", "collate"]

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.utterances = list(utterances)
        self.tokens = [list(t) for t in token_ids]
        self.sample_rate = sample_rate
        self.augment = augment
        self.augment_from_epoch = augment_from_epoch
        self.seed = seed
        self.fbank = FbankConfig(sample_rate=sample_rate)
        with ThreadPoolExecutor(load_threads) as pool:
            audio = list(
                pool.map(lambda u: read_wav(u.audio, sample_rate), self.utterances)
            )
        # int16 keeps hours of audio in a few GB
        self.audio = [
            np.clip(a * 32768.0, -32768, 32767).astype(np.int16) for a in audio
        ]
        self.durations = np.array([len(a) / sample_rate for a in self.audio])
        logger.info(
            "loaded %d utterances, %.1f hours",
            len(self.audio),
            self.durations.sum() / 3600,
        )

    def __len__(self) -> int:
        return len(self.audio)

    def waveform(self, index: int) -> np.ndarray:
        return self.audio[index].astype(np.float32) / 32768.0

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
