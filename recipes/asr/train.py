"""Train a ChunkFormer CTC recognizer (one GPU, many GPUs under torchrun, or
the CPU for a smoke run).

    python -m recipes.asr.train --train data/asr/train.jsonl \
        --dev data/asr/dev.jsonl --out runs/asr --total-steps 20000
    torchrun --nproc_per_node 2 -m recipes.asr.train ...   # same flags

Dynamic chunk training: every batch draws a chunk size, a left and a right
context (or full context), so one model serves offline decoding and
streaming. Checkpoints (``<out>/checkpoint.pt``, one file, overwritten
atomically) resume exactly: weights, optimizer, schedule, step, data
position and random states. ``--max-minutes`` stops cleanly before a
wall-clock limit; rerunning the same command continues the run. The final
model goes to ``<out>/model``; with ``--dev``, the model of the evaluation
with the lowest mean dev WER so far also goes to ``<out>/best``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from recipes.asr.augment import AugmentConfig, spec_augment, vtlp_factors
from recipes.asr.data import AsrDataset, BucketBatchSampler, training_loader
from recipes.common import (
    Distributed,
    WallClock,
    capture_rng,
    load_checkpoint,
    read_manifest,
    restore_rng,
    save_checkpoint,
)
from speech.asr.config import AsrConfig
from speech.asr.frontend import (
    VTLN_RANGE,
    FbankConfig,
    fbank_batch,
    fbank_numpy,
    fbank_torch,
)
from speech.asr.metrics import word_error_rate
from speech.asr.model import AsrModel, load_state, save_model
from speech.asr.tokenizer import Tokenizer
from speech.asr.weights import weights_digest
from speech.formats import write_text_atomic
from speech.text.normalize import asr_transcript

logger = logging.getLogger("recipes.asr.train")

STREAM_CHUNKS = (2, 3, 4, 6, 8, 12, 16)
OFFLINE_CHUNKS = (16, 24, 32, 48, 64)


# Peak learning rates. A trained model resumed with --init-from gets a fresh
# AdamW (checkpoints that travel hold weights only), and re-warming it to the
# from-scratch peak undoes its training: the 19.88M model diverged at 1e-3
# (stage 13); its dev WER went 30.2 -> 38.5 % at 3e-4 (with a wider VTLP) and
# 30.2 -> 27.5 % at 5e-5, same weights and data, 4 GPUs x 1,000 s batches
# (README, stages 15 and 16).
SCRATCH_LR, SCRATCH_WARMUP = 2e-3, 800
FINETUNE_LR, FINETUNE_WARMUP = 5e-5, 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--train",
        nargs="+",
        required=True,
        help="JSONL manifests or LibriSpeech folders",
    )
    p.add_argument("--dev", nargs="*", default=[], help="validation manifests")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--total-steps", type=int, default=20000, help="length of the LR schedule"
    )
    p.add_argument(
        "--max-steps", type=int, default=0, help="stop this run at this step (0: total)"
    )
    p.add_argument("--max-minutes", type=float, default=0.0)
    p.add_argument(
        "--batch-seconds", type=float, default=400.0, help="audio per batch per GPU"
    )
    p.add_argument("--max-utterance-seconds", type=float, default=25.0)
    p.add_argument(
        "--join-fraction",
        type=float,
        default=0.0,
        help="add this share of joined items (2-3 utterances with pauses, "
        "up to --max-utterance-seconds), for long recordings",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate (default: {SCRATCH_LR:g} from scratch, "
        f"{FINETUNE_LR:g} with --init-from, whose optimizer state starts afresh)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"warm-up steps (default: {SCRATCH_WARMUP} from scratch, "
        f"{FINETUNE_WARMUP} with --init-from)",
    )
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--vocab-size", type=int, default=256)
    p.add_argument("--d-model", type=int, default=AsrConfig.d_model)
    p.add_argument("--num-heads", type=int, default=AsrConfig.num_heads)
    p.add_argument("--ffn-dim", type=int, default=AsrConfig.ffn_dim)
    p.add_argument("--num-layers", type=int, default=AsrConfig.num_layers)
    p.add_argument("--conv-kernel", type=int, default=AsrConfig.conv_kernel)
    p.add_argument("--dropout", type=float, default=AsrConfig.dropout)
    p.add_argument("--full-context-prob", type=float, default=0.3)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument(
        "--vtlp-prob",
        type=float,
        default=AugmentConfig.vtlp_prob,
        help="share of utterances whose spectrum is frequency-warped (VTLP)",
    )
    p.add_argument(
        "--vtlp-range",
        type=float,
        nargs=2,
        default=AugmentConfig.vtlp_range,
        metavar=("LOW", "HIGH"),
        help="VTLP warp factors are drawn uniformly from LOW..HIGH "
        "(default: %(default)s; above 1 moves formants up)",
    )
    p.add_argument(
        "--eq-prob",
        type=float,
        default=AugmentConfig.eq_prob,
        help="share of utterances coloured by a random EQ (microphone, codec)",
    )
    p.add_argument(
        "--eq-db",
        type=float,
        default=AugmentConfig.eq_db,
        help="largest boost or cut of one EQ knot, in dB (default: %(default)s)",
    )
    p.add_argument(
        "--eq-knots",
        type=int,
        default=AugmentConfig.eq_knots,
        help="EQ gains drawn at this many log-spaced frequencies from 100 Hz "
        "to Nyquist (default: %(default)s; more make finer spectral shapes)",
    )
    p.add_argument(
        "--revoice-prob",
        type=float,
        default=AugmentConfig.revoice_prob,
        help="share of utterances spoken again through a parametric vocoder "
        "(their envelope, a new pulse and noise source; default: %(default)s)",
    )
    p.add_argument(
        "--fricative-shift-prob",
        type=float,
        default=AugmentConfig.fricative_shift_prob,
        help="share of utterances whose fricative noise moves along frequency, "
        "voiced frames left alone (default: %(default)s)",
    )
    p.add_argument(
        "--fricative-shift-range",
        type=float,
        nargs=2,
        default=AugmentConfig.fricative_shift_range,
        metavar=("LOW", "HIGH"),
        help="its factors, drawn uniformly (default: %(default)s; below 1 lower)",
    )
    p.add_argument(
        "--augment-from-epoch",
        type=int,
        default=1,
        help="waveform augmentation from this epoch on (clean data first)",
    )
    p.add_argument(
        "--sorted-epochs",
        type=int,
        default=1,
        help="epochs whose batches go from short to long (SortaGrad)",
    )
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument(
        "--dev-utterances",
        type=int,
        default=0,
        metavar="N",
        help="evaluate on the first N dev utterances (default 0: all of them, "
        "as recipes.asr.evaluate does, so the two report the same WER)",
    )
    p.add_argument(
        "--fit-schedule",
        type=int,
        default=0,
        metavar="N",
        help="with --max-minutes: after N steps of this run, and every N steps "
        "after, fit the LR schedule's length so that it ends when the time "
        "budget does, at the pace kept since step N/2 of this run (the first "
        "steps are slow: loader start, kernel selection); the length is stored "
        "in the checkpoint: a resumed run never lengthens it, and stops at "
        "its end",
    )
    p.add_argument(
        "--init-from",
        metavar="DIR",
        help="start from a model folder (config.json, tokenizer.model and "
        "model.pt or model-0000i-of-0000n.pt shards): its size, tokenizer, "
        "CMVN and weights",
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels (bitwise-reproducible runs and resumes; slower)",
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bf16 autocast on CUDA (default off: in a measured fine-tune, bf16 "
        "left dev WER 1.5 points above the same run in float32, at the same "
        "step rate; see docs/asr_model_history.md, stage 22)",
    )
    p.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TensorFloat-32 matrix products on CUDA (float32 storage and "
        "accumulation, inputs rounded to a 10-bit mantissa; "
        "benchmarks/asr_train_step.py --precision times it)",
    )
    p.add_argument(
        "--edge-silence-prob",
        type=float,
        default=AugmentConfig.edge_silence_prob,
        help="share of utterances given 50-600 ms of silence before and after "
        "the speech (the corpora are trimmed to 50 ms)",
    )
    p.add_argument(
        "--profile-steps",
        type=int,
        default=0,
        metavar="N",
        help="profile N training steps (after 10 steps of warm-up) with "
        "torch.profiler: the operators with the most device and CPU time go "
        "to the log, a Chrome trace to OUT/profile/",
    )
    args = p.parse_args(argv)
    low, high = args.vtlp_range
    lowest, highest = VTLN_RANGE  # the warps the front end takes
    if not lowest <= low <= high <= highest:
        p.error(
            f"--vtlp-range {low} {high}: need {lowest:g} <= LOW <= HIGH <= {highest:g}"
        )
    args.vtlp_range = (low, high)
    if not 0.0 <= args.eq_db <= 24.0:
        p.error(f"--eq-db {args.eq_db:g}: need 0 <= DB <= 24")
    if not 2 <= args.eq_knots <= 32:
        p.error(f"--eq-knots {args.eq_knots}: need 2 <= N <= 32")
    if not 0.0 <= args.revoice_prob <= 1.0:
        p.error(f"--revoice-prob {args.revoice_prob:g}: need 0 <= P <= 1")
    if not 0.0 <= args.fricative_shift_prob <= 1.0:
        p.error(
            f"--fricative-shift-prob {args.fricative_shift_prob:g}: need 0 <= P <= 1"
        )
    low, high = args.fricative_shift_range
    if not 0.5 <= low <= high <= 2.0:
        p.error(
            f"--fricative-shift-range {low:g} {high:g}: need 0.5 <= LOW <= HIGH <= 2"
        )
    args.fricative_shift_range = (low, high)
    tuned = args.init_from is not None
    if args.lr is None:
        args.lr = FINETUNE_LR if tuned else SCRATCH_LR
    if args.warmup is None:
        args.warmup = FINETUNE_WARMUP if tuned else SCRATCH_WARMUP
    if args.lr < 0 or args.warmup < 0:
        p.error(f"--lr {args.lr:g} / --warmup {args.warmup}: need both >= 0")
    return args


PROFILE_WAIT, PROFILE_WARMUP = 10, 2


def start_profiler(steps: int, device: torch.device) -> torch.profiler.profile | None:
    """A ``torch.profiler`` session over ``steps`` training steps, after
    ``PROFILE_WAIT`` steps (workers starting, kernels tuning) and
    ``PROFILE_WARMUP`` more; ``None`` when ``steps`` is 0."""
    if steps <= 0:
        return None
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profiler = torch.profiler.profile(
        activities=activities,
        schedule=torch.profiler.schedule(
            wait=PROFILE_WAIT, warmup=PROFILE_WARMUP, active=steps, repeat=1
        ),
        acc_events=True,  # one cycle; keeps torch from warning it clears events
    )
    profiler.start()
    return profiler


def report_profile(
    profiler: torch.profiler.profile, device: torch.device, folder: Path
) -> None:
    """Stop ``profiler``, log its top operators (by device time on a GPU,
    and by CPU time) and write its Chrome trace into ``folder``."""
    profiler.stop()
    table = profiler.key_averages()
    sorts = ["self_cpu_time_total"]
    if device.type == "cuda":
        sorts.insert(0, "self_device_time_total")
    for sort in sorts:
        logger.info(
            "profile, by %s:\n%s", sort, table.table(sort_by=sort, row_limit=25)
        )
    folder.mkdir(parents=True, exist_ok=True)
    trace = folder / "trace.json"
    profiler.export_chrome_trace(str(trace))
    logger.info("profile trace: %s", trace)


def draw_geometry(
    rng: np.random.Generator, longest: int, full_prob: float
) -> tuple[int, int, int]:
    """Chunk size, left and right context for one batch (encoder frames)."""
    if rng.random() < full_prob:
        return max(longest, 1), 0, 0
    if rng.random() < 0.5:  # streaming-like: small chunks, no right context
        chunk = int(rng.choice(STREAM_CHUNKS))
        left = int(rng.choice([chunk, 2 * chunk, 4 * chunk, 32, 64, 128]))
        return chunk, left, 0
    chunk = int(rng.choice(STREAM_CHUNKS + OFFLINE_CHUNKS))
    left = int(rng.choice([chunk, 2 * chunk, 64, 128]))
    right = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
    return chunk, left, right


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.03 + 0.97 * 0.5 * (1.0 + math.cos(math.pi * progress))


def refit_due(steps_this_run: int, every: int) -> bool:
    """Whether ``--fit-schedule N`` refits the schedule after this step: at
    step N of the run and every N steps after it, so the schedule follows the
    pace the run keeps (evaluations, longer utterances after the sorted first
    epoch, neighbours on the machine) rather than that of its first steps."""
    return every > 0 and steps_this_run >= every and steps_this_run % every == 0


def fitted_total(step: int, rate: float, remaining: float, cap: int) -> int:
    """The schedule length that ends when ``remaining`` seconds do, at
    ``rate`` steps/s from ``step``; never past ``cap`` (the length the run
    started with: ``--total-steps``, or a resumed run's fitted length) nor
    before the next step."""
    return max(step + 1, min(cap, int(step + rate * max(remaining, 0.0))))


def prepare(
    args: argparse.Namespace, out: Path, texts: list[str], env: Distributed
) -> Tokenizer:
    tokenizer_file = out / "tokenizer.model"
    if env.is_main and not tokenizer_file.exists():
        out.mkdir(parents=True, exist_ok=True)
        Tokenizer.train(texts, args.vocab_size, out / "tokenizer")
    env.barrier()
    return Tokenizer.load(tokenizer_file)


def compute_cmvn(
    dataset: AsrDataset, count: int = 2000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    total = torch.zeros(80, dtype=torch.float64)
    squares = torch.zeros(80, dtype=torch.float64)
    frames = 0
    for index in picks:
        feats = fbank_torch(
            torch.from_numpy(dataset.waveform(int(index))), dataset.fbank
        ).double()
        total += feats.sum(0)
        squares += (feats**2).sum(0)
        frames += feats.shape[0]
    mean = total / frames
    std = (squares / frames - mean**2).clamp(min=1e-8).sqrt()
    return mean.float(), (1.0 / std).float()


def greedy_texts(
    log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer
) -> list[str]:
    best = log_probs.argmax(-1).cpu()
    texts = []
    for row, n in zip(best, lengths.tolist(), strict=True):
        ids = torch.unique_consecutive(row[:n]).tolist()
        texts.append(tokenizer.decode([i for i in ids if i != 0]))
    return texts


@torch.no_grad()
def validate(
    model: AsrModel, dev: list, tokenizer: Tokenizer, device: torch.device
) -> dict[str, float]:
    """Greedy WER on dev utterances for full context, the default offline
    geometry and the default streaming geometry."""
    model.eval()
    cfg = model.config
    geometries = {
        "full": None,
        "offline": cfg.offline,
        "streaming": cfg.streaming,
    }
    fbank = FbankConfig(sample_rate=cfg.sample_rate)
    results = {}
    refs = [asr_transcript(u.text) for u, _ in dev]
    feats = [torch.from_numpy(fbank_numpy(w, fbank)) for _, w in dev]
    for name, geometry in geometries.items():
        hyps = []
        for start in range(0, len(feats), 64):
            group = feats[start : start + 64]
            lengths = torch.tensor([f.shape[0] for f in group])
            padded = torch.nn.utils.rnn.pad_sequence(group, batch_first=True).to(device)
            if geometry is None:
                g = (int(lengths.max()) // 8 + 1, 0, 0)
            else:
                g = (geometry.chunk_size, geometry.left_context, geometry.right_context)
            log_probs, out_lengths = model(padded, lengths.to(device), *g)
            hyps += greedy_texts(log_probs, out_lengths, tokenizer)
        results[name] = word_error_rate(zip(refs, hyps, strict=True))
    model.train()
    return results


def keep_best(model: AsrModel, wers: dict[str, float], step: int, out: Path) -> bool:
    """Export the model to ``out/best`` when the mean of its dev WERs is the
    lowest of the run so far (``out/best/dev_wer.json`` holds the step and
    the WERs, and survives a resume). A run whose learning rate proves too
    high then still leaves its best weights, not only its last."""
    score = sum(wers.values()) / len(wers)
    record = out / "best" / "dev_wer.json"
    if record.is_file() and score >= json.loads(record.read_text())["mean"]:
        return False
    save_model(model, out / "best", half=True, tokenizer_file=out / "tokenizer.model")
    write_text_atomic(
        record,
        json.dumps({"step": step, "mean": score, **wers}, indent=2) + "\n",
    )
    logger.info("step %d: best dev WER so far, exported to best/", step)
    return True


def model_config(args: dict, vocab_size: int) -> AsrConfig:
    """The model a run's arguments (``vars(args)``, also stored in its
    checkpoints) describe: the ``--init-from`` model's configuration with
    this run's dropout, else one built from the size flags."""
    if args.get("init_from"):
        config = AsrConfig.load(Path(args["init_from"]) / "config.json")
        return config.with_updates(dropout=args["dropout"])
    return AsrConfig(
        d_model=args["d_model"],
        num_heads=args["num_heads"],
        ffn_dim=args["ffn_dim"],
        num_layers=args["num_layers"],
        conv_kernel=args["conv_kernel"],
        subsampling_channels=args["d_model"],
        dropout=args["dropout"],
        vocab_size=vocab_size,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    clock = WallClock(args.max_minutes)
    env = Distributed(args.device)
    torch.use_deterministic_algorithms(args.deterministic)
    device = env.device
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.manual_seed(args.seed + env.rank)
    out = Path(args.out)

    train = [u for path in args.train for u in read_manifest(path)]
    train = [
        u for u in train if u.duration <= args.max_utterance_seconds or u.duration == 0
    ]
    texts = [asr_transcript(u.text) for u in train]
    keep = [i for i, t in enumerate(texts) if t]
    train, texts = [train[i] for i in keep], [texts[i] for i in keep]
    init = Path(args.init_from) if args.init_from else None
    if init is not None and env.is_main and not (out / "tokenizer.model").exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(init / "tokenizer.model", out / "tokenizer.model")
    env.barrier()
    tokenizer = prepare(args, out, texts, env)
    token_ids = [tokenizer.encode(t) for t in texts]
    augment = (
        None
        if args.no_augment
        else AugmentConfig(
            vtlp_prob=args.vtlp_prob,
            vtlp_range=args.vtlp_range,
            eq_prob=args.eq_prob,
            eq_db=args.eq_db,
            eq_knots=args.eq_knots,
            revoice_prob=args.revoice_prob,
            fricative_shift_prob=args.fricative_shift_prob,
            fricative_shift_range=args.fricative_shift_range,
            edge_silence_prob=args.edge_silence_prob,
        )
    )
    dataset = AsrDataset(
        train,
        token_ids,
        augment=augment,
        seed=args.seed,
        augment_from_epoch=args.augment_from_epoch,
        join_fraction=args.join_fraction,
        join_max_seconds=args.max_utterance_seconds,
    )

    config = model_config(vars(args), tokenizer.vocab_size)
    initial_state = None
    if init is not None:
        initial_state = load_state(init)
    # what the run started from, so that a resumed run can tell that
    # --init-from now names other weights
    started_from = weights_digest(init) if init is not None else None
    if config.vocab_size != tokenizer.vocab_size:
        raise SystemExit(
            f"vocabulary {tokenizer.vocab_size} != model's {config.vocab_size}"
        )
    model = AsrModel(config)
    cmvn_file = out / "cmvn.pt"
    if env.is_main and initial_state is not None and not cmvn_file.exists():
        save_checkpoint(
            cmvn_file,
            {
                "mean": initial_state["feature_mean"],
                "istd": initial_state["feature_istd"],
            },
        )
    if env.is_main and not cmvn_file.exists():
        mean, istd = compute_cmvn(
            AsrDataset(train[:4000], token_ids[:4000]), seed=args.seed
        )
        save_checkpoint(cmvn_file, {"mean": mean, "istd": istd})
    env.barrier()
    cmvn = torch.load(cmvn_file)
    model.feature_mean.copy_(cmvn["mean"])
    model.feature_istd.copy_(cmvn["istd"])
    if initial_state is not None:
        model.load_state_dict(initial_state)
    model.to(device)
    if env.is_main:
        params = sum(p.numel() for p in model.parameters())
        logger.info(
            "model: %.2fM parameters, config %s, CPU threads: %d",
            params / 1e6,
            json.dumps(config.to_dict()),
            torch.get_num_threads(),
        )

    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.lr,
        weight_decay=args.weight_decay,
        betas=(0.9, 0.98),
        fused=device.type == "cuda",  # one kernel for all parameters
    )
    # the schedule's length can be fitted to a time budget (see --fit-schedule)
    schedule = {"total": args.total_steps, "fitted": False}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, args.warmup, schedule["total"])
    )
    step, epoch, position = 0, 0, 0
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    if checkpoint is not None and checkpoint.get("started_from", started_from) != (
        started_from
    ):
        # a run folder left by an earlier run (a warm machine keeps it):
        # resuming it would not train from the weights now named
        raise SystemExit(
            f"{out}: holds a run that started from other weights than "
            f"--init-from {init}; give a new --out, or clear this one"
            if init is not None
            else f"{out}: holds a run started with --init-from; resume it with "
            "the same --init-from, or give a new --out"
        )
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        schedule["total"] = checkpoint.get("schedule_total", args.total_steps)
        schedule["fitted"] = checkpoint.get("schedule_fitted", False)
        step, epoch, position = (
            checkpoint["step"],
            checkpoint["epoch"],
            checkpoint["position"],
        )
        restore_rng(
            checkpoint["rng"][env.rank]
            if env.rank < len(checkpoint["rng"])
            else checkpoint["rng"][0]
        )
        logger.info("resumed at step %d (epoch %d, batch %d)", step, epoch, position)

    wrapped = (
        DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        if env.world_size > 1
        else model
    )
    sampler = BucketBatchSampler(
        dataset.durations,
        args.batch_seconds,
        args.seed,
        env.rank,
        env.world_size,
        sorted_epochs=args.sorted_epochs,
    )
    writer = SummaryWriter(str(out / "tb")) if env.is_main else None
    dev = []
    if env.is_main and args.dev:
        dev_utts = [u for path in args.dev for u in read_manifest(path)][
            : args.dev_utterances or None
        ]
        from recipes.common import read_wav

        dev = [(u, read_wav(u.audio, config.sample_rate)) for u in dev_utts]
        logger.info(
            "dev WER on %d utterances of %s (%d voices)",
            len(dev),
            ", ".join(str(p) for p in args.dev),
            len({u.speaker for u in dev_utts}),
        )
    stop_step = args.max_steps or args.total_steps
    if schedule["fitted"]:
        # a fitted schedule's end is the run's end: a resumed run stops there
        # (one resumed after its end trains no steps at the floor rate)
        stop_step = min(stop_step, schedule["total"])
        if step >= stop_step:
            logger.info(
                "the fitted schedule ended at step %d: nothing left to train",
                schedule["total"],
            )
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"
    )

    def checkpoint_now() -> None:
        env.check_in_sync(model)
        rngs = [None] * env.world_size
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
                    "schedule_total": schedule["total"],
                    "schedule_fitted": schedule["fitted"],
                    "started_from": started_from,
                    "rng": rngs,
                    "args": vars(args),
                },
            )

    progress = tqdm(
        total=stop_step, initial=step, disable=not env.is_main, dynamic_ncols=True
    )
    # refits move the schedule's end either way, but never past the end this
    # run started with: a resumed run does not re-warm a finished schedule
    schedule_cap = schedule["total"]
    audio_seconds, started, steps_this_run = 0.0, time.monotonic(), 0
    pace_from = started  # when step fit_schedule // 2 of this run ended
    model.train()
    done = step >= stop_step
    loader = training_loader(
        dataset, sampler, args.workers, pin_memory=device.type == "cuda", seed=args.seed
    )
    profiler = start_profiler(args.profile_steps, device) if env.is_main else None
    loader_wait, fetch_started = 0.0, time.monotonic()
    last_eval: tuple[int, dict[str, float]] = (-1, {})  # step, dev WERs
    while not done:
        sampler.epoch, sampler.start = epoch, position
        for batch in loader:
            loader_wait += time.monotonic() - fetch_started
            warp = None
            if (
                augment is not None
                and augment.vtlp_prob > 0
                and epoch >= args.augment_from_epoch
            ):
                warp_rng = np.random.default_rng([args.seed, env.rank, step, 1])
                warp = torch.as_tensor(
                    vtlp_factors(warp_rng, len(batch["samples"]), augment),
                    device=device,
                )
            features, lengths = fbank_batch(
                batch["waveforms"].to(device, non_blocking=True),
                batch["samples"].to(device),
                dataset.fbank,
                warp,
            )
            tokens = batch["tokens"].to(device)
            token_lengths = batch["token_lengths"].to(device)
            if augment is not None:
                features = spec_augment(features, lengths, augment, model.feature_mean)
            longest = (int(lengths.max()) - 15) // 8 + 1
            geometry_rng = np.random.default_rng([args.seed, env.rank, step])
            chunk, left, right = draw_geometry(
                geometry_rng, longest, args.full_context_prob
            )
            with autocast:
                log_probs, out_lengths = wrapped(features, lengths, chunk, left, right)
            loss = (
                F.ctc_loss(
                    log_probs.transpose(0, 1).float(),
                    tokens,
                    out_lengths,
                    token_lengths,
                    blank=0,
                    reduction="sum",
                    zero_infinity=True,
                )
                / features.shape[0]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            position += 1
            steps_this_run += 1
            audio_seconds += float(batch["samples"].sum()) / config.sample_rate
            progress.update(1)
            if env.is_main and step % args.log_every == 0:
                rate = audio_seconds / (time.monotonic() - started)
                progress.set_postfix(
                    loss=f"{loss.item():.2f}", lr=f"{scheduler.get_last_lr()[0]:.2e}"
                )
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar(
                    "train/audio_seconds_per_second", rate * env.world_size, step
                )
            if steps_this_run == args.fit_schedule // 2:
                pace_from = time.monotonic()
            if clock.limit and refit_due(steps_this_run, args.fit_schedule):
                rate = (steps_this_run - args.fit_schedule // 2) / max(
                    time.monotonic() - pace_from, 1e-9
                )
                remaining = clock.limit - clock.elapsed() - 60.0  # final eval + export
                fitted = torch.tensor(
                    [fitted_total(step, rate, remaining, schedule_cap)],
                    device=device,
                )
                if env.world_size > 1:
                    torch.distributed.broadcast(fitted, 0)
                previous, schedule["total"] = schedule["total"], int(fitted.item())
                schedule["fitted"] = True
                stop_step = min(args.max_steps or args.total_steps, schedule["total"])
                progress.total = stop_step
                if abs(schedule["total"] - previous) > 0.01 * previous:
                    logger.info(
                        "schedule fitted: %d steps at %.2f steps/s",
                        schedule["total"],
                        rate,
                    )
            if step % args.save_every == 0:
                checkpoint_now()
            if dev and step % args.eval_every == 0:
                wers = validate(model, dev, tokenizer, device)
                last_eval = (step, wers)
                logger.info(
                    "step %d dev WER %s",
                    step,
                    {k: round(v, 2) for k, v in wers.items()},
                )
                for name, value in wers.items():
                    writer.add_scalar(f"dev/wer_{name}", value, step)
                keep_best(model, wers, step, out)
            if profiler is not None:
                profiler.step()
                if steps_this_run == PROFILE_WAIT + PROFILE_WARMUP + args.profile_steps:
                    report_profile(profiler, device, out / "profile")
                    profiler = None
            if env.any(clock.up() or step >= stop_step):
                done = True
                break
            fetch_started = time.monotonic()
        else:
            epoch += 1
            position = 0
    progress.close()
    if profiler is not None:  # the run ended before the profiled steps did
        report_profile(profiler, device, out / "profile")
    checkpoint_now()
    if env.is_main:
        elapsed = time.monotonic() - started
        if dev:
            if last_eval[0] == step:  # evaluated at this very step: not again
                wers = last_eval[1]
            else:
                wers = validate(model, dev, tokenizer, device)
                keep_best(model, wers, step, out)
            logger.info(
                "final step %d dev WER %s",
                step,
                {k: round(v, 2) for k, v in wers.items()},
            )
        model.tokenizer = tokenizer
        save_model(
            model, out / "model", half=True, tokenizer_file=out / "tokenizer.model"
        )
        print(
            f"step {step}: {steps_this_run / max(elapsed, 1e-9):.2f} steps/s, "
            f"{audio_seconds * env.world_size / max(elapsed, 1e-9):.0f} audio s/s over "
            f"{env.world_size} process(es), {elapsed:.0f} s, "
            f"{100 * loader_wait / max(elapsed, 1e-9):.0f} % of it waiting for "
            "the data loader",
            flush=True,
        )
        writer.close()
    env.close()


if __name__ == "__main__":
    main()
