"""CPU cost of the ASR trainer's waveform augmentation: how many seconds of
audio one loader worker (one thread) turns into training items per second of
CPU time, for the default augmentation and for each part of it alone.

    python benchmarks/asr_augment.py --manifest data/asr/dev.jsonl --limit 300
    python benchmarks/asr_augment.py --manifest data/asr/dev.jsonl --loader-workers 2

On a GPU machine the loader workers do this work for every batch, so their
rate, times the number of workers, bounds the trainer's audio seconds per
second (the trainer logs that figure at the end of a run). Items are read as
the trainer reads them (``AsrDataset``, joined utterances included); the
first pass warms caches and is not timed.

With ``--loader-workers N`` it instead measures the whole input pipeline as
the trainer runs it (``DataLoader`` with N persistent workers, the trainer's
batch sampler and collation, default augmentation): audio seconds per wall
second, per pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from recipes.asr.augment import AugmentConfig  # noqa: E402
from recipes.asr.data import (  # noqa: E402
    AsrDataset,
    BucketBatchSampler,
    training_loader,
)
from recipes.common import read_manifest  # noqa: E402

OFF = {"speeds": (1.0,), "eq_prob": 0.0, "reverb_prob": 0.0, "noise_prob": 0.0}
PARTS = {
    "default (all parts at their rates)": {},
    "none (read and gain only)": OFF,
    "speed 0.9 / 1.1": {**OFF, "speeds": (0.9, 1.1)},
    "random EQ": {**OFF, "eq_prob": 1.0},
    "random EQ, 12 dB at 12 knots": {
        **OFF,
        "eq_prob": 1.0,
        "eq_db": 12.0,
        "eq_knots": 12,
    },
    "reverberation": {**OFF, "reverb_prob": 1.0},
    "resynthesis through a vocoder (revoice)": {**OFF, "revoice_prob": 1.0},
    "default + revoice at 0.3": {"revoice_prob": 0.3},
    "noise (white, pink, brown, hum, babble)": {**OFF, "noise_prob": 1.0},
}


def rate(dataset: AsrDataset, epochs: int) -> tuple[float, float]:
    """Audio seconds per CPU second, and CPU ms per item, over ``epochs``."""
    audio = 0.0
    started = time.process_time()
    for epoch in range(1, epochs + 1):
        for index in range(len(dataset)):
            samples, _ = dataset[(epoch, index)]
            audio += len(samples) / dataset.sample_rate
    cpu = time.process_time() - started
    return audio / cpu, 1000 * cpu / (epochs * len(dataset))


def loader_rates(
    dataset: AsrDataset, workers: int, batch_seconds: float, passes: int
) -> list[float]:
    """Audio seconds per wall second that the trainer's ``DataLoader``
    delivers with ``workers`` persistent workers, for each of ``passes``
    passes over ``dataset`` after one untimed pass (workers starting)."""
    sampler = BucketBatchSampler(dataset.durations, batch_seconds, 0, 0, 1)
    loader = training_loader(dataset, sampler, workers)
    rates = []
    for epoch in range(1, passes + 2):  # epoch 0 would skip augmentation
        sampler.epoch, sampler.start = epoch, 0
        started, audio = time.monotonic(), 0.0
        for batch in loader:
            audio += float(batch["samples"].sum()) / dataset.sample_rate
        if epoch > 1:
            rates.append(audio / (time.monotonic() - started))
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, required=True, help="JSONL manifest")
    p.add_argument("--limit", type=int, default=300, help="first N utterances")
    p.add_argument("--epochs", type=int, default=2, help="timed passes")
    p.add_argument("--join-fraction", type=float, default=0.3)
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--loader-workers",
        type=int,
        metavar="N",
        help="time the trainer's DataLoader with N workers instead",
    )
    p.add_argument("--batch-seconds", type=float, default=100.0)
    args = p.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    utterances = read_manifest(args.manifest)[: args.limit]
    if args.loader_workers is not None:
        dataset = AsrDataset(
            utterances,
            [[1]] * len(utterances),
            augment=AugmentConfig(),
            join_fraction=args.join_fraction,
        )
        rates = loader_rates(
            dataset, args.loader_workers, args.batch_seconds, args.epochs
        )
        print(
            f"{len(utterances)} utterances of {args.manifest}, join fraction "
            f"{args.join_fraction}, {args.loader_workers} loader workers, "
            f"batches of {args.batch_seconds:g} s: "
            + ", ".join(f"{r:.0f}" for r in rates)
            + " audio s per wall s (one figure per pass)"
        )
        if args.json:
            args.json.write_text(json.dumps({"rates": rates}, indent=1))
        return
    rows = []
    for name, change in PARTS.items():
        config = dataclasses.replace(AugmentConfig(), **change)
        dataset = AsrDataset(
            utterances,
            [[1]] * len(utterances),
            augment=config,
            join_fraction=args.join_fraction,
        )
        rate(dataset, 1)  # warm-up, not timed
        audio_rate, ms = rate(dataset, args.epochs)
        rows.append({"part": name, "audio_s_per_cpu_s": audio_rate, "ms_per_item": ms})
    hours = sum(u.duration for u in utterances) / 3600
    print(
        f"{len(utterances)} utterances ({hours:.2f} h) of {args.manifest}, "
        f"join fraction {args.join_fraction}, {args.epochs} timed passes, 1 thread\n"
    )
    print("| augmentation | audio s per CPU s | CPU ms per item |")
    print("|---|---|---|")
    for row in rows:
        rate_, ms = row["audio_s_per_cpu_s"], row["ms_per_item"]
        print(f"| {row['part']} | {rate_:.0f} | {ms:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
