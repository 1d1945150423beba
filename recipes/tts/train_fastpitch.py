"""Train an Incremental FastPitch voice from wav + text (one GPU, many GPUs
under torchrun, or the CPU for a smoke run).

    python -m recipes.tts.train_fastpitch --data data/slt --out runs/fastpitch
    torchrun --nproc_per_node 2 -m recipes.tts.train_fastpitch ...  # same flags

One H100 (shared or not), a few hours of single-speaker audio, one run that
fits its LR schedule to the time budget after 200 steps:

    python -m recipes.tts.train_fastpitch --data /tmp/work/tts \
        --out /tmp/work/run_fastpitch --workers 16 --batch-frames 24000 \
        --max-batch 96 --lr 1.5e-3 --warmup 300 --total-steps 40000 \
        --fit-schedule 200 --max-minutes 18 --eval-every 1000 --save-every 1000

(``--fit-schedule`` ends the schedule with this run: for a budget split over
several commands, give ``--total-steps`` instead.) The voice to ship is
``<out>/tts/`` (``config.json`` + fp16 ``fastpitch.pt``); put the vocoder in
``vocoder/`` beside them. On a CPU, set ``OMP_NUM_THREADS`` to the free cores:
oversubscribed OpenMP threads slow training tenfold.

Steps: read the corpus (LJSpeech folder or JSONL manifest), compute features
in parallel processes (ids, log-mel, f0, energy; cached in
``<out>/features.pt``), then train the acoustic model jointly with its
aligner: the aligner's hard alignment gives the durations and the per-symbol
pitch and energy targets. Losses: mel L1 (or MSE) of the chunk-masked decode,
log-duration MSE, pitch and energy MSE, forward-sum alignment loss and the
binarisation loss (on after ``--bin-start`` of the schedule, ramped over
``--bin-ramp``).

The decoder always trains with the chunk mask it streams with
(``--chunk-size``/``--past-context``); ``--random-chunks`` instead draws the
geometry per batch from a few settings so one model serves several.

Checkpoints (``<out>/checkpoint.pt``, one file, overwritten atomically)
resume exactly: weights, optimizer, schedule, step, data position, random
states (bitwise with ``--deterministic``; otherwise the atomic adds in the
backward of the chunk gathers make any two runs differ in the last bits).
``--max-minutes`` stops cleanly before a wall-clock limit; rerunning the same
command continues. Inference weights (fp16) and ``config.json`` go to
``<out>/tts/`` at every checkpoint and at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from recipes.common import (
    Distributed,
    WallClock,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from recipes.tts.data import Features, bucket_batches, collate, preprocess, read_corpus
from speech.core import padding_mask
from speech.text.phonemize import PHONEME_SYMBOLS, text_to_ids
from speech.tts.alignment import (
    Aligner,
    binarization_loss,
    forward_sum_loss,
    monotonic_alignment_search,
)
from speech.tts.config import FastPitchConfig
from speech.tts.decoder import chunk_context_distance
from speech.tts.fastpitch import FastPitch, save_tts
from speech.tts.pitch import average_per_symbol, normalize_pitch

logger = logging.getLogger("recipes.tts.train_fastpitch")

RANDOM_GEOMETRIES = ((8, 32), (16, 32), (16, 48), (16, 64), (32, 64), (32, 96))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", required=True, help="LJSpeech-style folder or JSONL manifest"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--total-steps", type=int, default=8000, help="length of the LR schedule"
    )
    p.add_argument(
        "--max-steps", type=int, default=0, help="stop this run at this step (0: total)"
    )
    p.add_argument(
        "--max-minutes", type=float, default=0.0, help="wall-clock budget (0: none)"
    )
    p.add_argument(
        "--fit-schedule",
        type=int,
        default=0,
        metavar="N",
        help="with --max-minutes: after N steps of this run, shorten the LR "
        "schedule to end when the time budget does (stored in the checkpoint)",
    )
    p.add_argument(
        "--batch-frames",
        type=int,
        default=16000,
        help="padded mel frames per batch per GPU",
    )
    p.add_argument(
        "--max-batch", type=int, default=64, help="utterances per batch at most"
    )
    p.add_argument(
        "--max-frames", type=int, default=1500, help="longer utterances are skipped"
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--mel-loss", choices=("l1", "mse"), default="l1")
    p.add_argument("--duration-weight", type=float, default=0.1)
    p.add_argument("--pitch-weight", type=float, default=0.1)
    p.add_argument("--energy-weight", type=float, default=0.1)
    p.add_argument("--align-weight", type=float, default=1.0)
    p.add_argument("--bin-weight", type=float, default=1.0)
    p.add_argument(
        "--bin-start", type=float, default=0.1, help="fraction of total steps"
    )
    p.add_argument(
        "--bin-ramp", type=float, default=0.1, help="fraction of total steps"
    )
    d = FastPitchConfig()
    p.add_argument("--model-dim", type=int, default=d.model_dim)
    p.add_argument("--num-heads", type=int, default=d.num_heads)
    p.add_argument("--ffn-dim", type=int, default=d.ffn_dim)
    p.add_argument("--encoder-layers", type=int, default=d.encoder_layers)
    p.add_argument("--decoder-layers", type=int, default=d.decoder_layers)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--chunk-size", type=int, default=d.chunk_size)
    p.add_argument("--past-context", type=int, default=d.past_context)
    p.add_argument(
        "--random-chunks",
        action="store_true",
        help=f"draw (chunk, past) per batch from {RANDOM_GEOMETRIES}",
    )
    p.add_argument(
        "--workers", type=int, default=0, help="preprocessing processes (0: all cores)"
    )
    p.add_argument("--val-size", type=int, default=32, help="held-out utterances")
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 autocast on CUDA (ignored on the CPU)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels: bitwise-exact resume on the CPU (the chunk "
        "gathers' backward otherwise accumulates with atomics)",
    )
    return p.parse_args(argv)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up (at most a quarter of the schedule), then cosine decay
    to 5 % of the peak."""
    warmup = max(1, min(warmup, total // 4))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def bin_factor(step: int, total: int, start: float, ramp: float) -> float:
    begin = start * total
    if step < begin:
        return 0.0
    return min(1.0, (step - begin + 1) / max(1.0, ramp * total))


class FastPitchTraining(nn.Module):
    """FastPitch and its aligner; ``forward`` returns the losses of a batch."""

    def __init__(self, config: FastPitchConfig, mel_loss: str = "l1") -> None:
        super().__init__()
        self.config = config
        self.fastpitch = FastPitch(config)
        self.aligner = Aligner(
            config.model_dim,
            config.mel.n_mels,
            config.aligner_dim,
            config.aligner_temperature,
            config.prior_scaling,
        )
        self.mel_loss = mel_loss

    def targets(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Alignment, durations and per-symbol pitch / energy targets."""
        c = self.config
        symbols, symbol_lengths = batch["symbols"], batch["symbol_lengths"]
        mel, mel_lengths = batch["mel"], batch["mel_lengths"]
        alignment = self.aligner(
            self.fastpitch.embed(symbols), symbol_lengths, mel, mel_lengths
        )
        hard = monotonic_alignment_search(
            alignment.log_prob, symbol_lengths, mel_lengths
        )
        durations = hard.sum(1).long()  # (B, N)
        f0 = batch["f0"]
        pitch = average_per_symbol(
            normalize_pitch(f0, c.pitch_mean, c.pitch_std), durations, (f0 > 0).float()
        )
        frame_valid = padding_mask(mel_lengths, mel.shape[1]).float()
        energy = average_per_symbol(
            (batch["energy"] - c.energy_mean) / c.energy_std, durations, frame_valid
        )
        return {
            "soft": alignment.soft,
            "log_prob": alignment.log_prob,
            "hard": hard,
            "durations": durations,
            "pitch": pitch,
            "energy": energy,
        }

    def forward(
        self, batch: dict[str, Tensor], chunk_size: int, past_context: int
    ) -> dict[str, Tensor]:
        symbols, symbol_lengths = batch["symbols"], batch["symbol_lengths"]
        mel, mel_lengths = batch["mel"], batch["mel_lengths"]
        t = self.targets(batch)
        out = self.fastpitch(
            symbols,
            symbol_lengths,
            t["durations"],
            t["pitch"],
            t["energy"],
            chunk_size,
            past_context,
        )
        frame_valid = padding_mask(mel_lengths, mel.shape[1])[..., None].float()
        difference = (out.mel.float() - mel) * frame_valid
        if self.mel_loss == "l1":
            mel_loss = difference.abs().sum()
        else:
            mel_loss = difference.square().sum()
        mel_loss = mel_loss / (frame_valid.sum() * mel.shape[-1])
        symbol_valid = padding_mask(symbol_lengths, symbols.shape[1]).float()
        count = symbol_valid.sum()

        def masked_mse(prediction: Tensor, target: Tensor) -> Tensor:
            return ((prediction.float() - target) ** 2 * symbol_valid).sum() / count

        return {
            "mel": mel_loss,
            "duration": masked_mse(
                out.log_durations, torch.log1p(t["durations"].float())
            ),
            "pitch": masked_mse(out.pitch, t["pitch"]),
            "energy": masked_mse(out.energy, t["energy"]),
            "align": forward_sum_loss(t["log_prob"], symbol_lengths, mel_lengths),
            "bin": binarization_loss(t["hard"], t["soft"]),
        }


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def total_loss(
    losses: dict[str, Tensor], args: argparse.Namespace, bin_scale: float
) -> Tensor:
    return (
        losses["mel"]
        + args.duration_weight * losses["duration"]
        + args.pitch_weight * losses["pitch"]
        + args.energy_weight * losses["energy"]
        + args.align_weight * losses["align"]
        + args.bin_weight * bin_scale * losses["bin"]
    )


@torch.no_grad()
def validate(
    model: FastPitchTraining,
    features: Features,
    device: torch.device,
    autocast: torch.autocast,
    batch_size: int = 16,
) -> dict[str, float]:
    """Teacher-forced losses, the chunk-vs-full-context distance, and the mel
    L1 of free-running inference (predicted durations) over matched lengths."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    c = model.config
    for start in range(0, len(features), batch_size):
        indices = list(range(start, min(start + batch_size, len(features))))
        batch = to_device(collate(features, indices), device)
        with autocast:
            losses = model(batch, c.chunk_size, c.past_context)
            t = model.targets(batch)
            inputs, _ = model.fastpitch.teacher_forced(
                batch["symbols"],
                batch["symbol_lengths"],
                t["durations"],
                t["pitch"],
                t["energy"],
            )
            distance = chunk_context_distance(
                model.fastpitch.decoder, inputs.frames, inputs.frame_lengths
            )
            duration_error = (
                model.fastpitch.prosody(
                    batch["symbols"], batch["symbol_lengths"]
                ).frame_lengths.float()
                - batch["mel_lengths"].float()
            ).abs() / batch["mel_lengths"].float()
        values = {name: float(v) for name, v in losses.items()}
        values["context_l1"] = distance.l1
        values["context_mse"] = distance.mse
        values["length_error"] = float(duration_error.mean())
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value * len(indices)
        count += len(indices)
    model.train(was_training)
    return {name: value / max(count, 1) for name, value in sums.items()}


def prepare_features(
    args: argparse.Namespace, out: Path, env: Distributed, base: FastPitchConfig
) -> Features:
    items = read_corpus(args.data)
    if not items:
        raise SystemExit(f"{args.data}: no utterances")
    cache = out / "features.pt"
    f0 = (base.f0_min, base.f0_max, base.voicing_threshold)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tqdm(total=len(items), desc="features", dynamic_ncols=True) as bar:
            features = preprocess(
                items,
                cache,
                text_to_ids,
                PHONEME_SYMBOLS,
                base.mel,
                f0,
                args.workers or None,
                bar.update,
            )
        logger.info(
            "features: %d of %d utterances in %.1f s",
            len(features),
            len(items),
            time.monotonic() - started,
        )
    env.barrier()
    if not env.is_main:
        features = preprocess(
            items, cache, text_to_ids, PHONEME_SYMBOLS, base.mel, f0, 1
        )
    return features


def split_features(
    features: Features, val_size: int, max_frames: int
) -> tuple[Features, Features]:
    """Hold out ``val_size`` utterances (a fixed pseudo-random choice)."""
    order = np.random.default_rng(0).permutation(len(features))
    val_count = min(val_size, len(features) // 10) if len(features) > 1 else 0
    val = sorted(order[:val_count].tolist())
    lengths = features.frame_lengths()
    train = sorted(i for i in order[val_count:].tolist() if lengths[i] <= max_frames)
    return features.subset(train), features.subset(val)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    clock = WallClock(args.max_minutes)
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    env = Distributed(args.device)
    device = env.device
    torch.backends.cuda.matmul.allow_tf32 = True  # float32 leftovers under bf16
    torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    checkpoint = load_checkpoint(out / "checkpoint.pt")

    base = FastPitchConfig(
        symbols=PHONEME_SYMBOLS,
        model_dim=args.model_dim,
        num_heads=args.num_heads,
        ffn_dim=args.ffn_dim,
        encoder_layers=args.encoder_layers,
        decoder_layers=args.decoder_layers,
        dropout=args.dropout,
        attention_dropout=args.dropout,
        chunk_size=args.chunk_size,
        past_context=args.past_context,
    )
    features = prepare_features(args, out, env, base)
    train, val = split_features(features, args.val_size, args.max_frames)
    if checkpoint is not None:
        config = FastPitchConfig.from_dict(checkpoint["config"])
    else:
        pitch_mean, pitch_std = train.pitch_stats()
        energy_mean, energy_std = train.energy_stats()
        config = base.replace(
            pitch_mean=pitch_mean,
            pitch_std=pitch_std,
            energy_mean=energy_mean,
            energy_std=energy_std,
        )
    torch.manual_seed(args.seed)  # same initial weights on every rank
    model = FastPitchTraining(config, args.mel_loss)
    with torch.no_grad():  # start the mel output at the corpus mean: faster start
        mean_mel = torch.stack([m.float().mean(0) for m in train.mels]).mean(0)
        model.fastpitch.decoder.to_mel.bias.copy_(mean_mel)
    model.to(device)
    torch.manual_seed(args.seed + env.rank)
    if env.is_main:
        params = sum(p.numel() for p in model.fastpitch.parameters())
        logger.info(
            "%d train / %d validation utterances (%.2f h); FastPitch %.2fM "
            "parameters (+%.2fM aligner); config %s",
            len(train),
            len(val),
            train.frame_lengths().sum() * config.mel.frame_seconds / 3600,
            params / 1e6,
            sum(p.numel() for p in model.aligner.parameters()) / 1e6,
            json.dumps({k: v for k, v in config.to_dict().items() if k != "symbols"}),
        )

    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
        weight_decay=args.weight_decay,
    )
    # The schedule's length can be fitted to a time budget (--fit-schedule).
    schedule = {"total": args.total_steps}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, args.warmup, schedule["total"])
    )
    step, epoch, position = 0, 0, 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        schedule["total"] = checkpoint.get("schedule_total", args.total_steps)
        step, epoch, position = (
            checkpoint["step"],
            checkpoint["epoch"],
            checkpoint["position"],
        )
        rngs = checkpoint["rng"]
        restore_rng(rngs[env.rank] if env.rank < len(rngs) else rngs[0])
        logger.info("resumed at step %d (epoch %d, batch %d)", step, epoch, position)

    wrapped: nn.Module = model
    if env.world_size > 1:
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    writer = SummaryWriter(str(out / "tensorboard")) if env.is_main else None
    stop_step = min(args.max_steps or schedule["total"], schedule["total"])
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"
    )
    lengths = train.frame_lengths()

    def checkpoint_now() -> None:
        env.check_in_sync(model)
        rngs: list[Any] = [None] * env.world_size
        state = capture_rng()
        if env.world_size > 1:
            torch.distributed.all_gather_object(rngs, state)
        else:
            rngs = [state]
        if env.is_main:
            save_checkpoint(
                out / "checkpoint.pt",
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    "position": position,
                    "rng": rngs,
                    "schedule_total": schedule["total"],
                    "config": config.to_dict(),
                    "args": vars(args),
                },
            )
            save_tts(model.fastpitch, out / "tts")

    def log_validation() -> None:
        if writer is None or len(val) == 0:
            return
        values = validate(model, val, device, autocast)
        logger.info(
            "step %d validation %s", step, {k: round(v, 4) for k, v in values.items()}
        )
        for name, value in values.items():
            writer.add_scalar(f"val/{name}", value, step)

    progress = tqdm(
        total=stop_step, initial=step, disable=not env.is_main, dynamic_ncols=True
    )
    started, steps_this_run, frames_seen = time.monotonic(), 0, 0
    model.train()
    done = step >= stop_step
    while not done:
        batches = bucket_batches(
            lengths,
            args.batch_frames,
            args.max_batch,
            args.seed,
            epoch,
            env.rank,
            env.world_size,
        )
        for indices in batches[position:]:
            batch = to_device(collate(train, indices), device)
            if args.random_chunks:
                pick = int(torch.randint(len(RANDOM_GEOMETRIES), ()))
                chunk_size, past_context = RANDOM_GEOMETRIES[pick]
            else:
                chunk_size, past_context = config.chunk_size, config.past_context
            bin_scale = bin_factor(
                step, schedule["total"], args.bin_start, args.bin_ramp
            )
            with autocast:
                losses = wrapped(batch, chunk_size, past_context)
            loss = total_loss(losses, args, bin_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            position += 1
            steps_this_run += 1
            frames_seen += int(batch["mel_lengths"].sum())
            progress.update(1)
            if writer is not None and step % args.log_every == 0:
                progress.set_postfix(
                    mel=f"{losses['mel'].item():.3f}",
                    align=f"{losses['align'].item():.2f}",
                    lr=f"{scheduler.get_last_lr()[0]:.1e}",
                )
                for name, value in losses.items():
                    writer.add_scalar(f"train/{name}", value.item(), step)
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/bin_scale", bin_scale, step)
                elapsed = time.monotonic() - started
                writer.add_scalar(
                    "train/frames_per_second",
                    frames_seen * env.world_size / max(elapsed, 1e-9),
                    step,
                )
            if (
                args.fit_schedule
                and steps_this_run == args.fit_schedule
                and clock.limit
            ):
                rate = steps_this_run / (time.monotonic() - started)
                remaining = clock.limit - clock.elapsed() - 60.0  # final eval, export
                fitted = torch.tensor(
                    [step + rate * max(remaining, 0.0)], device=device
                )
                if env.world_size > 1:
                    torch.distributed.broadcast(fitted, 0)
                schedule["total"] = max(step + 1, min(schedule["total"], int(fitted)))
                stop_step = min(stop_step, schedule["total"])
                logger.info(
                    "schedule fitted: %d steps at %.2f steps/s", schedule["total"], rate
                )
            if step % args.save_every == 0:
                checkpoint_now()
            if step % args.eval_every == 0:
                log_validation()
            if env.any(clock.up() or step >= stop_step):
                done = True
                break
        else:
            epoch += 1
            position = 0
    progress.close()
    checkpoint_now()
    if env.is_main:
        elapsed = time.monotonic() - started
        if step % args.eval_every:
            log_validation()
        if writer is not None:
            writer.close()
        print(
            f"step {step}: {steps_this_run / max(elapsed, 1e-9):.2f} steps/s, "
            f"{frames_seen * env.world_size / max(elapsed, 1e-9):.0f} mel frames/s "
            f"over {env.world_size} process(es), {elapsed:.0f} s; "
            f"voice in {out / 'tts'}",
            flush=True,
        )
    env.close()


if __name__ == "__main__":
    main()
