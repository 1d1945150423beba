"""Where the time of an ASR encoder pass goes: the operators with the most
device (or CPU) time, from ``torch.profiler``, for the long-form pipeline or
masked batching, in one dtype.

    python benchmarks/asr_profile.py --device cuda --dtype bf16 --task longform
    python benchmarks/asr_profile.py --device cuda --dtype fp32 --task batch --rows 15

Random weights of ``--config`` (default: the shipped model's dimensions); the
input is real log-mel features of synthetic speech tiled to ``--seconds``.
The pass is run once on ``--warmup-seconds`` of input (default: the same
input) to warm up, timed once, then run once under the profiler.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import (
    DTYPES,
    asr_config,
    feature_pattern,
    frames,
    parse_geometry,
    random_model,
    synchronize,
    tiled,
)
from torch.nn.attention import SDPBackend
from torch.profiler import ProfilerActivity, profile

from speech.asr.longform import EncoderPipeline
from speech.core import attention


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--config", default="default", help="default, small or large")
    p.add_argument("--task", default="longform", choices=("longform", "batch"))
    p.add_argument("--seconds", type=float, default=3600.0)
    p.add_argument("--block-seconds", type=float, default=900.0, help="long-form")
    p.add_argument("--geometry", default="64,128,128", help="C,L,R encoder frames")
    p.add_argument("--warmup-seconds", type=float, default=0.0, help="0: same")
    p.add_argument(
        "--cold",
        action="store_true",
        help="profile the first pass over the input (after the warm-up), not a "
        "repeated one: shows what new input shapes cost",
    )
    p.add_argument(
        "--sdpa",
        default="",
        help="CUDA attention backends instead of speech.core.attention."
        "CUDA_ATTENTION_BACKENDS, e.g. CUDNN_ATTENTION,EFFICIENT_ATTENTION,MATH",
    )
    p.add_argument("--rows", type=int, default=20)
    args = p.parse_args()

    device, dtype = args.device, DTYPES[args.dtype]
    model = random_model(asr_config(args.config), device, args.dtype)
    g = parse_geometry(args.geometry)
    pattern = feature_pattern()
    features = tiled(pattern, 0, frames(args.seconds), device, dtype)
    warm = tiled(pattern, 0, frames(args.warmup_seconds), device, dtype)
    block = frames(args.block_seconds)

    if args.sdpa:  # read by every attention call
        attention.CUDA_ATTENTION_BACKENDS = [
            getattr(SDPBackend, name) for name in args.sdpa.split(",")
        ]

    def run(features: torch.Tensor = features) -> None:
        with torch.inference_mode():
            if args.task == "longform":
                pipe = EncoderPipeline(model, g)
                for start in range(0, features.shape[0], block):
                    pipe.push(features[start : start + block])
                pipe.flush()
            else:
                half = features.shape[0] // 2
                parts = [features[:half], features[half:], features[: half // 3]]
                model.forward_list(parts, g.chunk_size, g.left_context, g.right_context)
        synchronize(device)

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    run(warm if args.warmup_seconds else features)
    if args.cold:
        with profile(activities=activities) as prof:
            run()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    if not args.cold:
        with profile(activities=activities) as prof:
            run()
    on_gpu = device.startswith("cuda")
    key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    print(
        f"{args.task}, {args.seconds:.0f} s of audio, {args.dtype}, {device}: "
        f"{seconds:.3f} s unprofiled"
    )
    table = prof.key_averages().table(
        sort_by=key, row_limit=args.rows, max_name_column_width=60
    )
    print(table)


if __name__ == "__main__":
    main()
