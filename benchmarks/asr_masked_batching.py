"""Masked vs padded batching of a mixed-length set: throughput and peak memory.

    python benchmarks/asr_masked_batching.py --device cpu --durations 1,30,60,300
    python benchmarks/asr_masked_batching.py --device cuda --dtype fp32,bf16 \
        --config small --json masked.json

The set is one utterance per duration (default 1 s, 30 s, 1 min, 15 min,
30 min, 1 h, as in the ChunkFormer paper) of real log-mel features of a
speech-like signal, tiled to length. Same model (random weights, seed 0), same
geometry (``--geometry C,L,R``, default 64,128,128) for both variants:

- masked: ``AsrModel.forward_list``, our masked batching: no padding at all.
- padded: what a padded-batch chunked encoder does: every utterance padded to
  the longest and all lengths claimed full (``lengths = T_max``) through
  ``AsrModel.forward``, so compute and memory cover the padding. Both variants
  subsample in windows of ``--max-subsampling-frames`` encoder frames, so the
  only difference is the padding.

Throughput = real audio seconds (the padding does not count) / wall seconds,
after a warm-up on a short set. Peak memory: ``torch.cuda.max_memory_allocated``
on a GPU (weights and inputs included), peak RSS on both; every variant runs in
a fresh subprocess so the peaks never mix. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import (
    DTYPES,
    asr_config,
    cuda_peak_gib,
    feature_pattern,
    frames,
    machine,
    markdown_table,
    parse_durations,
    parse_geometry,
    peak_rss_mib,
    random_model,
    report,
    reset_cuda_peak,
    run_worker,
    synchronize,
    tiled,
    write_json,
)

PAPER_SET = "1,30,60,900,1800,3600"


def run_variant(model, variant: str, features: list, geometry, max_sub: int) -> None:
    c, left, r = geometry.chunk_size, geometry.left_context, geometry.right_context
    if variant == "masked":
        model.forward_list(features, c, left, r, max_sub)
        return
    # padded: (B, T_max, M) and every length claimed full, as a padded-batch
    # encoder computes it
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    lengths = torch.full((len(features),), padded.shape[1], dtype=torch.long)
    model(padded, lengths, c, left, r, max_sub)


def worker(payload: dict) -> None:
    device, dtype = payload["device"], payload["dtype"]
    if device == "cpu":
        torch.set_num_threads(payload["threads"])
    geometry = parse_geometry(payload["geometry"])
    model = random_model(asr_config(payload["config"]), device, dtype)
    pattern = feature_pattern()
    make = lambda secs: [  # noqa: E731
        tiled(pattern, 977 * i, frames(s), device, DTYPES[dtype])
        for i, s in enumerate(secs)
    ]
    variant, max_sub = payload["variant"], payload["max_subsampling_frames"]
    with torch.inference_mode():
        run_variant(model, variant, make([1, 5, 12]), geometry, max_sub)  # warm-up
        synchronize(device)
        features = make(payload["durations"])
        rss_before = peak_rss_mib()
        reset_cuda_peak(device)
        synchronize(device)
        start = time.perf_counter()
        run_variant(model, variant, features, geometry, max_sub)
        synchronize(device)
        seconds = time.perf_counter() - start
    audio = sum(payload["durations"])
    computed = (
        audio if variant == "masked" else len(features) * max(payload["durations"])
    )
    report(
        {
            "variant": variant,
            "dtype": dtype,
            "seconds": seconds,
            "audio_s": audio,
            "computed_audio_s": computed,
            "throughput": audio / seconds,
            "gpu_peak_gib": cuda_peak_gib(device),
            "rss_peak_mib": peak_rss_mib(),
            "rss_before_mib": rss_before,
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", default="default", help="default, small or large")
    p.add_argument("--dtype", default="fp32", help="comma list of fp32, bf16, fp16")
    p.add_argument("--durations", default=PAPER_SET, help="seconds, comma list")
    p.add_argument("--geometry", default="64,128,128", help="C,L,R encoder frames")
    p.add_argument("--max-subsampling-frames", type=int, default=1024)
    p.add_argument("--variants", default="masked,padded")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import json

        worker(json.loads(args.worker))
        return
    durations = parse_durations(args.durations)
    rows = []
    for dtype in args.dtype.split(","):
        for variant in args.variants.split(","):
            payload = {
                "device": args.device,
                "dtype": dtype,
                "variant": variant,
                "config": args.config,
                "durations": durations,
                "geometry": args.geometry,
                "threads": args.threads,
                "max_subsampling_frames": args.max_subsampling_frames,
            }
            result = run_worker(__file__, payload)
            result.setdefault("variant", variant)
            result.setdefault("dtype", dtype)
            rows.append(result)
            print(f"# {dtype} {variant}: {result}", file=sys.stderr, flush=True)
    by_key = {(r["dtype"], r["variant"]): r for r in rows}
    for row in rows:
        base = by_key.get((row["dtype"], "padded"))
        if "throughput" in row and base and "throughput" in base:
            row["speedup"] = row["throughput"] / base["throughput"]
            mem = "gpu_peak_gib" if row.get("gpu_peak_gib") else "rss_peak_mib"
            row["memory_vs_padded"] = row[mem] / base[mem]
    columns = [
        "variant",
        "dtype",
        "seconds",
        "audio_s",
        "computed_audio_s",
        "throughput",
        "speedup",
        "gpu_peak_gib",
        "rss_peak_mib",
        "memory_vs_padded",
        "error",
    ]
    print(
        f"config {args.config}, geometry {args.geometry}, durations {args.durations}"
        f" s, device {args.device}, {machine()}"
    )
    print(markdown_table(rows, columns))
    write_json(args.json, {"args": vars(args), "machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
