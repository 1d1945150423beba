"""Train the streaming vocoder (one GPU, many GPUs under torchrun, or the CPU
for a smoke run).

    python -m recipes.tts.train_vocoder --data data/slt --out runs/vocoder
    torchrun --nproc_per_node 2 -m recipes.tts.train_vocoder ...  # same flags

Data: an LJSpeech-style folder (``metadata.csv``, audio in ``wavs/<id>.wav``)
or a JSONL manifest (``{"audio": path, ...}`` per line, paths relative to the
manifest). All audio is read into memory at the start (16-bit PCM WAV through
the standard library; resampled when its rate differs).

Batches: every step draws, from a generator seeded by (seed, step, rank),
windows of ``--context-frames + --segment-frames`` mel frames at random
places. The vocoder starts each window from a fresh state, like a stream at
the start of an utterance, so the losses skip the first ``--context-frames``
frames (their caches are still filling) unless the window does start the
utterance (drawn with probability ``--start-prob``): it then learns the real
start of a stream. Mels are computed on the device from a crop of the
centre-padded waveform, identical to the whole utterance's mel.

Losses: multi-resolution log-mel L1 (weight ``--mel-weight``); after
``--adversarial-start`` steps also hinge losses and feature matching against
a multi-period and a multi-resolution spectrogram discriminator (HiFi-GAN,
Vocos). AdamW with linear warm-up and cosine decay (a function of the step);
bf16 autocast on CUDA for the networks (the inverse STFT and the losses stay
float32).

Checkpoints (``<out>/checkpoint.pt``, one file, replaced atomically) resume
exactly: weights, optimizers, the step (the learning rates and the batches
are functions of it) and random states. ``--max-minutes`` stops cleanly before a
wall-clock limit and rerunning the same command continues. The fp16
generator and its ``config.json`` go to ``<out>/vocoder/`` at every
checkpoint and at the end; TensorBoard scalars to ``<out>/tb``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
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
from tqdm import tqdm

from recipes.common import (
    Distributed,
    WallClock,
    capture_rng,
    load_checkpoint,
    read_wav,
    restore_rng,
    save_checkpoint,
)
from recipes.tts.vocoder_gan import (
    MultiResolutionMelLoss,
    PeriodDiscriminators,
    SpectrogramDiscriminators,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)
from speech.tts.audio import MelConfig, MelSpectrogram
from speech.tts.vocoder import Vocoder, VocoderConfig, save_vocoder

logger = logging.getLogger("recipes.tts.train_vocoder")


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
        "--total-steps", type=int, default=6000, help="length of the LR schedule"
    )
    p.add_argument(
        "--max-steps", type=int, default=0, help="stop at this step (0: total)"
    )
    p.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock budget")
    p.add_argument(
        "--batch-size", type=int, default=32, help="windows per step per GPU"
    )
    p.add_argument("--segment-frames", type=int, default=48, help="frames with losses")
    p.add_argument("--context-frames", type=int, default=16, help="warm-up frames")
    p.add_argument(
        "--start-prob",
        type=float,
        default=0.1,
        help="probability that a window starts its utterance",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--disc-lr", type=float, default=0.0, help="0: same as --lr")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--min-lr-factor", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=100.0, help="gradient norm clip")
    p.add_argument(
        "--adversarial-start",
        type=int,
        default=1500,
        help="steps of reconstruction-only training first",
    )
    p.add_argument("--mel-weight", type=float, default=45.0)
    p.add_argument(
        "--mrd-weight",
        type=float,
        default=0.5,
        help="weight of the spectrogram discriminator's losses",
    )
    p.add_argument("--fm-weight", type=float, default=1.0, help="feature matching")
    p.add_argument("--mpd-channels", default="32,128,256,512,512")
    p.add_argument("--mrd-channels", type=int, default=32)
    d = VocoderConfig()
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--intermediate-dim", type=int, default=d.intermediate_dim)
    p.add_argument("--layers", type=int, default=d.num_layers)
    p.add_argument("--kernel-size", type=int, default=d.kernel_size)
    p.add_argument("--val-size", type=int, default=4, help="held-out utterances")
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 autocast on CUDA (ignored on the CPU)",
    )
    return p.parse_args(argv)


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up, then cosine decay to ``floor`` times the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def audio_paths(data: str | Path) -> list[Path]:
    """Audio files of an LJSpeech-style folder or a JSONL manifest."""
    data = Path(data).resolve()
    if data.is_dir():
        metadata = data / "metadata.csv"
        if not metadata.is_file():
            raise FileNotFoundError(f"{data}: no metadata.csv (LJSpeech layout)")
        with metadata.open(encoding="utf-8", newline="") as file:
            rows = csv.reader(file, delimiter="|", quoting=csv.QUOTE_NONE)
            return [
                data / "wavs" / f"{row[0]}.wav"
                for row in rows
                if row and row[0].strip()
            ]
    paths = []
    with data.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                try:
                    audio = Path(json.loads(line)["audio"])
                except (ValueError, KeyError) as error:
                    raise ValueError(
                        f"{data}:{number}: bad manifest line ({error})"
                    ) from None
                paths.append(audio if audio.is_absolute() else data.parent / audio)
    return paths


class Windows:
    """Waveforms in memory and the per-step random windows of a batch.

    Each waveform of S samples is stored centre-padded by N / 2 = 2 H on both
    sides (reflect, as ``MelSpectrogram`` pads it). The window of W frames
    starting at frame a is the crop of (W + 3) H padded samples from a * H:
    its mel frames 2 .. W + 1 are the utterance's frames a .. a + W - 1 and
    its samples [2 H, (W + 2) H) are the vocoder's target.
    """

    def __init__(self, waves: list[np.ndarray], mel: MelConfig, frames: int) -> None:
        self.hop, self.frames = mel.hop_length, frames
        pad = mel.n_fft // 2
        if pad != 2 * self.hop:
            raise ValueError("windows assume n_fft == 4 * hop")
        self.padded, self.starts = [], []
        crop = (frames + 3) * self.hop
        for wave in waves:
            mode = "reflect" if wave.size > pad else "constant"
            padded = np.pad(wave.astype(np.float32), pad, mode=mode)
            if padded.size < crop:
                padded = np.pad(padded, (0, crop - padded.size))
            utterance_frames = max(wave.size // self.hop + 1, frames)
            self.padded.append(padded)
            self.starts.append(utterance_frames - frames + 1)  # window starts
        counts = np.array(self.starts, dtype=np.float64)
        self.weights = counts / counts.sum()  # every frame equally likely

    def batch(
        self, generator: np.random.Generator, size: int, context: int, start_prob: float
    ) -> tuple[Tensor, Tensor]:
        """Crops (B, (W + 3) H) and loss weights over the target (B, W H)."""
        hop = self.hop
        crops = np.empty((size, (self.frames + 3) * hop), dtype=np.float32)
        weights = np.ones((size, self.frames * hop), dtype=np.float32)
        ramp = np.sin(0.5 * np.pi * (np.arange(hop) + 0.5) / hop) ** 2
        for row, index in enumerate(
            generator.choice(len(self.padded), size, p=self.weights)
        ):
            start = int(generator.integers(self.starts[index]))
            if generator.random() < start_prob:
                start = 0
            crops[row] = self.padded[index][start * hop : start * hop + crops.shape[1]]
            if start > 0 and context > 0:
                weights[row, : context * hop] = 0.0
                weights[row, (context - 1) * hop : context * hop] = ramp
        return torch.from_numpy(crops), torch.from_numpy(weights)


class GeneratorTraining(nn.Module):
    """Window crops (B, (W + 3) H) -> the vocoder's waveform (B, W H)."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.vocoder = Vocoder(config)
        self.mel = MelSpectrogram(config.mel)

    def forward(self, crops: Tensor) -> Tensor:
        with torch.no_grad(), torch.autocast(crops.device.type, enabled=False):
            mel = self.mel(crops)[:, :, 2:-2]  # (B, M, W)
        return self.vocoder(mel)


class Discriminators(nn.Module):
    def __init__(self, mpd_channels: tuple[int, ...], mrd_channels: int) -> None:
        super().__init__()
        self.period = PeriodDiscriminators(channels=mpd_channels)
        self.spectrogram = SpectrogramDiscriminators(channels=mrd_channels)

    def forward(self, wave: Tensor) -> tuple[Any, Any]:
        return self.period(wave), self.spectrogram(wave)


def split_outputs(
    groups: tuple[Any, ...], size: int
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Discriminator outputs of cat([a, b]) -> the outputs of a and of b."""
    first = tuple([(s[:size], [f[:size] for f in fs]) for s, fs in g] for g in groups)
    second = tuple([(s[size:], [f[size:] for f in fs]) for s, fs in g] for g in groups)
    return first, second


def parameter_millions(module: nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@torch.no_grad()
def validate(
    model: GeneratorTraining,
    waves: list[np.ndarray],
    device: torch.device,
    autocast: torch.autocast,
) -> tuple[float, Tensor | None]:
    """Mean log-mel L1 of whole held-out utterances vocoded offline, and the
    first one's audio."""
    model.eval()
    losses, first = [], None
    for wave in waves:
        source = torch.from_numpy(wave).to(device)[None]
        mel = model.mel(source)
        with autocast:
            output = model.vocoder(mel)[:, : source.shape[1]]
        losses.append((model.mel(output.float()) - mel).abs().mean().item())
        first = output[0].float().cpu() if first is None else first
    model.train()
    return float(np.mean(losses)) if losses else float("nan"), first


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    clock = WallClock(args.max_minutes)
    env = Distributed(args.device)
    device = env.device
    out = Path(args.out)
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    config = VocoderConfig(
        dim=args.dim,
        intermediate_dim=args.intermediate_dim,
        num_layers=args.layers,
        kernel_size=args.kernel_size,
    )
    if checkpoint is not None:
        saved = VocoderConfig.from_dict(checkpoint["config"])
        if saved != config:
            logger.warning("model flags differ from the checkpoint's; using %s", saved)
        config = saved
    window_frames = args.context_frames + args.segment_frames

    started = time.monotonic()
    paths = audio_paths(args.data)
    waves = [read_wav(str(path), config.mel.sample_rate) for path in paths]
    val_waves = waves[-args.val_size :] if args.val_size > 0 else []
    train_waves = waves[: len(waves) - len(val_waves)]
    if not train_waves:
        raise ValueError(f"{args.data}: no training audio")
    windows = Windows(train_waves, config.mel, window_frames)
    hours = sum(w.size for w in train_waves) / config.mel.sample_rate / 3600

    torch.manual_seed(args.seed)  # same initial weights on every rank
    generator = GeneratorTraining(config).to(device)
    mpd_channels = tuple(int(c) for c in args.mpd_channels.split(","))
    discriminators = Discriminators(mpd_channels, args.mrd_channels).to(device)
    mel_loss_fn = MultiResolutionMelLoss(config.mel.sample_rate).to(device)
    del waves, train_waves  # the windows keep their own padded copies
    if env.is_main:
        logger.info(
            "%d train / %d held-out utterances (%.2f h, read in %.1f s); vocoder "
            "%.2fM parameters, discriminators %.2fM; %s",
            len(windows.padded),
            len(val_waves),
            hours,
            time.monotonic() - started,
            parameter_millions(generator.vocoder),
            parameter_millions(discriminators),
            json.dumps(config.to_dict()),
        )

    betas = (0.8, 0.9)
    optimizer_g = torch.optim.AdamW(
        generator.parameters(), lr=args.lr, betas=betas, weight_decay=args.weight_decay
    )
    optimizer_d = torch.optim.AdamW(
        discriminators.parameters(),
        lr=args.disc_lr or args.lr,
        betas=betas,
        weight_decay=args.weight_decay,
    )

    def set_learning_rates(step: int) -> float:
        """The schedule is a function of the step, so resuming restores it."""
        factor = lr_factor(step, args.warmup, args.total_steps, args.min_lr_factor)
        for optimizer, peak in (
            (optimizer_g, args.lr),
            (optimizer_d, args.disc_lr or args.lr),
        ):
            for group in optimizer.param_groups:
                group["lr"] = peak * factor
        return args.lr * factor

    step = 0
    if checkpoint is not None:
        generator.vocoder.load_state_dict(checkpoint["generator"])
        discriminators.load_state_dict(checkpoint["discriminators"])
        optimizer_g.load_state_dict(checkpoint["optimizer_g"])
        optimizer_d.load_state_dict(checkpoint["optimizer_d"])
        step = checkpoint["step"]
        rngs = checkpoint["rng"]
        restore_rng(rngs[env.rank] if env.rank < len(rngs) else rngs[0])
        logger.info("resumed at step %d", step)

    wrapped_g: nn.Module = generator
    wrapped_d: nn.Module = discriminators
    if env.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        # Every buffer (windows, filterbanks, DFT basis) is a constant.
        wrapped_g = DistributedDataParallel(
            generator, device_ids=ids, broadcast_buffers=False
        )
        wrapped_d = DistributedDataParallel(
            discriminators, device_ids=ids, broadcast_buffers=False
        )
    writer = None
    if env.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    stop_step = min(args.max_steps or args.total_steps, args.total_steps)
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"
    )

    def checkpoint_now() -> None:
        env.check_in_sync(generator)
        env.check_in_sync(discriminators)
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
                    "generator": generator.vocoder.state_dict(),
                    "discriminators": discriminators.state_dict(),
                    "optimizer_g": optimizer_g.state_dict(),
                    "optimizer_d": optimizer_d.state_dict(),
                    "step": step,
                    "rng": rngs,
                    "config": config.to_dict(),
                    "args": vars(args),
                },
            )
            save_vocoder(generator.vocoder, out / "vocoder")

    def log_validation() -> None:
        if writer is None or not val_waves:
            return
        loss, audio = validate(generator, val_waves, device, autocast)
        logger.info("step %d held-out mel L1 %.4f", step, loss)
        writer.add_scalar("val/mel_l1", loss, step)
        if audio is not None:
            writer.add_audio(
                "val/audio", audio.clamp(-1, 1), step, config.mel.sample_rate
            )

    progress = tqdm(
        total=stop_step, initial=step, disable=not env.is_main, dynamic_ncols=True
    )
    started, steps_this_run = time.monotonic(), 0
    generator.train()
    discriminators.train()
    while step < stop_step:
        rng = np.random.default_rng([args.seed, step, env.rank])
        crops, weights = windows.batch(
            rng, args.batch_size, args.context_frames, args.start_prob
        )
        crops = crops.to(device, non_blocking=True)
        weights = weights.to(device, non_blocking=True)
        hop = config.mel.hop_length
        target = crops[:, 2 * hop : (window_frames + 2) * hop] * weights
        with autocast:
            prediction = wrapped_g(crops) * weights  # (B, W H), float32
        adversarial = step >= args.adversarial_start
        lr = set_learning_rates(step)
        scalars: dict[str, float] = {}

        if adversarial:  # discriminator step on real and detached fake windows
            with autocast:
                real, fake = split_outputs(
                    wrapped_d(torch.cat([target, prediction.detach()])), target.shape[0]
                )
            loss_d = discriminator_hinge_loss(
                real[0], fake[0]
            ) + args.mrd_weight * discriminator_hinge_loss(real[1], fake[1])
            optimizer_d.zero_grad(set_to_none=True)
            loss_d.backward()
            norm_d = torch.nn.utils.clip_grad_norm_(
                discriminators.parameters(), args.clip
            )
            optimizer_d.step()
            scalars |= {"disc/loss": loss_d.item(), "disc/grad_norm": float(norm_d)}

        mel_loss = mel_loss_fn(prediction, target)
        loss_g = args.mel_weight * mel_loss
        if adversarial:
            # Gradients reach the discriminators here too; they are discarded
            # (zeroed before their next step), so skip their all-reduce.
            no_sync = getattr(wrapped_d, "no_sync", None)
            with autocast, no_sync() if no_sync else contextlib.nullcontext():
                with torch.no_grad():
                    real = wrapped_d(target)
                fake = wrapped_d(prediction)
                adv = generator_hinge_loss(
                    fake[0]
                ) + args.mrd_weight * generator_hinge_loss(fake[1])
                fm = feature_matching_loss(
                    real[0], fake[0]
                ) + args.mrd_weight * feature_matching_loss(real[1], fake[1])
            loss_g = loss_g + adv + args.fm_weight * fm
            scalars |= {
                "gen/adversarial": adv.item(),
                "gen/feature_matching": fm.item(),
            }
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        norm_g = torch.nn.utils.clip_grad_norm_(generator.parameters(), args.clip)
        optimizer_g.step()
        step += 1
        steps_this_run += 1
        progress.update(1)

        if writer is not None and (step % args.log_every == 0 or step == stop_step):
            elapsed = time.monotonic() - started
            scalars |= {
                "gen/mel": mel_loss.item(),
                "gen/loss": loss_g.item(),
                "gen/grad_norm": float(norm_g),
                "lr": lr,
                "steps_per_second": steps_this_run / max(elapsed, 1e-9),
            }
            for name, value in scalars.items():
                writer.add_scalar(name, value, step)
            progress.set_postfix(
                mel=f"{mel_loss.item():.3f}", adv=adversarial, lr=f"{lr:.1e}"
            )
        if step % args.save_every == 0:
            checkpoint_now()
        if step % args.eval_every == 0:
            log_validation()
        if env.any(clock.up()):
            break
    progress.close()
    checkpoint_now()
    if env.is_main:
        elapsed = time.monotonic() - started
        if step % args.eval_every:
            log_validation()
        if writer is not None:
            writer.close()
        print(
            f"step {step}: {steps_this_run / max(elapsed, 1e-9):.2f} steps/s over "
            f"{env.world_size} process(es), {elapsed:.0f} s; "
            f"vocoder in {out / 'vocoder'}",
            flush=True,
        )
    env.close()


if __name__ == "__main__":
    main()
