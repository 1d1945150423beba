"""Our encoder side by side with the official ChunkFormer encoder (PyPI
``chunkformer`` 1.2.2): same dimensions, random weights, same input tensor,
same device. Seconds, RTFx (audio seconds / wall seconds) and peak memory.

    pip download chunkformer==1.2.2 --no-deps -d .carry/chunkformer
    python benchmarks/chunkformer_official.py --device cpu --configs small \
        --dtype fp32 --longform 60 --batch 1,5,10,30,60
    python benchmarks/chunkformer_official.py --device cuda --json official.json
    python benchmarks/chunkformer_official.py --device cuda --long   # adds 16 h

``--wheel`` (default: the one in .carry/chunkformer) is unzipped to a
temporary folder and its modules are imported from there without running the
package ``__init__`` (which pulls deepspeed, transformers, ...): a stub
``chunkformer`` package module pointing at the unzipped folder is put in
``sys.modules``; ``chunkformer.modules`` and ``chunkformer.utils`` have empty
``__init__`` files. Its encoder: ``ChunkFormerEncoder(80, output_size=d,
attention_heads=h, linear_units=ffn, num_blocks=n, cnn_module_kernel=15,
cnn_module_norm="layer_norm", dynamic_conv=True)``, dw_striding 8x.
Ours: ``AsrModel`` with the same d, heads, FFN, blocks, kernel and
subsampling channels.

Two tasks, geometry C/L/R = 64/128/128 (``--geometry``):

- long-form (``--longform``, default 1 h and 4 h; ``--long`` adds 16 h): one
  (T, 80) fbank tensor made once on the device. Theirs: the encoder loop of
  ``ChunkFormerModel.endless_decode`` (``official_longform`` below:
  total_batch_duration 1800 s, the relative right context recomputed at each
  step, att_cache/cnn_cache carried, outputs kept). Ours: ``EncoderPipeline``
  fed 60 s slices of the same tensor; its CTC log-probabilities are dropped.
- masked batch (``--batch``, default 1 s .. 1 h, 6 utterances): one list of
  (T_b, 80) tensors. Theirs: ``encoder.forward_parallel_chunk`` over the whole
  list in one call (``batch_decode`` would split at 1800 s). Ours:
  ``AsrModel.forward_list`` (this includes our CTC head; theirs stops at the
  encoder).

Both read the same tensors: the script checks they are unchanged after each
run and prints their checksum. On a GPU, both implementations run in one
subprocess per (config, dtype, task) and the peak is
``torch.cuda.max_memory_allocated`` reset before each (weights and the input
features included); on the CPU each implementation gets its own subprocess and
the peak is its RSS. Each timing follows a warm-up on a 60 s input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import torch
from _common import (
    DTYPES,
    ROOT,
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

DEFAULT_WHEEL = ROOT / ".carry" / "chunkformer" / "chunkformer-1.2.2-py3-none-any.whl"
PAPER_SET = "1,30,60,900,1800,3600"


# ------------------------------------------------------------ their encoder


def import_official(wheel: Path, into: Path) -> types.ModuleType:
    """Unzip the wheel and import ``chunkformer.modules.encoder`` without
    running ``chunkformer/__init__.py``."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    package = types.ModuleType("chunkformer")
    package.__path__ = [str(into / "chunkformer")]
    sys.modules["chunkformer"] = package
    return importlib.import_module("chunkformer.modules.encoder")


def official_encoder(module: types.ModuleType, name: str) -> torch.nn.Module:
    config = asr_config(name)
    torch.manual_seed(0)
    return module.ChunkFormerEncoder(
        80,
        output_size=config.d_model,
        attention_heads=config.num_heads,
        linear_units=config.ffn_dim,
        num_blocks=config.num_layers,
        cnn_module_kernel=config.conv_kernel,
        cnn_module_norm="layer_norm",
        dynamic_conv=True,
    ).eval()


def official_longform(
    encoder,
    features: torch.Tensor,
    chunk: int,
    left: int,
    right: int,
    total_batch_duration: int = 1800,
) -> torch.Tensor:
    """The encoder loop of ``ChunkFormerModel.endless_decode`` (1.2.2):
    (T, 80) features -> (T', D). Windows of ``total_batch_duration / 2``
    seconds are encoded by ``forward_parallel_chunk`` with the attention and
    conv caches of the previous window; each window also reads the relative
    right context (r + max(c, r) (N - 1) frames) and drops its output."""
    device, dtype = features.device, features.dtype
    subsampling = encoder.embed.subsampling_rate
    conv_context = encoder.cnn_module_kernel // 2
    # window length in encoder frames (their arithmetic, float // included)
    multiply = (int(total_batch_duration // 0.01) // 2) // chunk // subsampling
    window = chunk * multiply
    look = max(right, conv_context)
    look_ahead = (look + max(chunk, look) * (encoder.num_blocks - 1)) * subsampling
    total = features.shape[0]
    heads, width = encoder.attention_heads, encoder._output_size
    att_cache = torch.zeros(
        encoder.num_blocks, left, heads, width * 2 // heads, device=device, dtype=dtype
    )
    cnn_cache = torch.zeros(
        encoder.num_blocks, width, conv_context, device=device, dtype=dtype
    )
    offset = torch.zeros(1, dtype=torch.int, device=device)
    outputs = []
    for index, _ in enumerate(range(0, total, window * subsampling)):
        start = window * subsampling * index
        stop = min(window * subsampling * (index + 1) + 7, total)
        x = features[start : stop + look_ahead]
        length = torch.tensor([x.shape[0]], dtype=torch.int, device=device)
        out, out_length, _, att_cache, cnn_cache, offset = (
            encoder.forward_parallel_chunk(
                xs=[x],
                xs_origin_lens=length,
                chunk_size=chunk,
                left_context_size=left,
                right_context_size=right,
                att_cache=att_cache,
                cnn_cache=cnn_cache,
                truncated_context_size=window,
                offset=offset,
            )
        )
        out = out.reshape(1, -1, out.shape[-1])[:, :out_length]
        last = window * subsampling * index + look_ahead >= total
        if not last:
            out = out[:, :window]  # drop the relative right context's output
        offset = offset - out_length + out.shape[1]
        outputs.append(out)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if last:
            break
    return torch.cat(outputs, dim=1)[0]


def official_batch(
    encoder, features: list[torch.Tensor], chunk: int, left: int, right: int
) -> torch.Tensor:
    """``forward_parallel_chunk`` over a list of (T_b, 80) inputs at once.

    In float32 it runs with no caches, as ``batch_decode`` does. In bf16/fp16
    its conv module makes a float32 zero cache when given none, and the
    concatenation promotes the activations (conv1d then fails), so zero caches
    of the first ``endless_decode`` step are passed in the model's dtype
    (offset 0: masked out)."""
    device, dtype = features[0].device, features[0].dtype
    att_cache = torch.zeros(0, 0, 0, device=device, dtype=dtype)
    cnn_cache = torch.zeros(0, 0, device=device, dtype=dtype)
    if dtype != torch.float32:
        heads, width = encoder.attention_heads, encoder._output_size
        att_cache = torch.zeros(
            encoder.num_blocks,
            left,
            heads,
            width * 2 // heads,
            device=device,
            dtype=dtype,
        )
        cnn_cache = torch.zeros(
            encoder.num_blocks,
            width,
            encoder.cnn_module_kernel // 2,
            device=device,
            dtype=dtype,
        )
    lengths = torch.tensor(
        [f.shape[0] for f in features], dtype=torch.int, device=device
    )
    return encoder.forward_parallel_chunk(
        xs=features,
        xs_origin_lens=lengths,
        chunk_size=chunk,
        left_context_size=left,
        right_context_size=right,
        att_cache=att_cache,
        cnn_cache=cnn_cache,
        offset=torch.zeros(len(features), dtype=torch.int, device=device),
    )[0]


# -------------------------------------------------------------- our encoder


def ours_longform(model, features: torch.Tensor, geometry, block: int) -> int:
    from speech.asr.longform import EncoderPipeline

    pipeline = EncoderPipeline(model, geometry)
    emitted = 0
    for start in range(0, features.shape[0], block):
        emitted += pipeline.push(features[start : start + block]).shape[0]
    return emitted + pipeline.flush().shape[0]


def ours_batch(model, features: list[torch.Tensor], geometry) -> int:
    g = geometry
    outputs = model.forward_list(
        features, g.chunk_size, g.left_context, g.right_context
    )
    return sum(o.shape[0] for o in outputs)


# ------------------------------------------------------------------ worker


def checksum(tensors: list[torch.Tensor]) -> str:
    total = sum(float(t.double().sum()) for t in tensors)
    return f"{sum(t.shape[0] for t in tensors)}x{tensors[0].shape[1]}:{total:.6e}"


def worker(payload: dict) -> None:
    device, dtype = payload["device"], DTYPES[payload["dtype"]]
    if device == "cpu":
        torch.set_num_threads(payload["threads"])
    g = parse_geometry(payload["geometry"])
    c, left, r = g.chunk_size, g.left_context, g.right_context
    module = import_official(Path(payload["wheel"]), Path(payload["unzip"]))
    pattern = feature_pattern()
    make = lambda secs: [  # noqa: E731
        tiled(pattern, 977 * i, frames(s), device, dtype) for i, s in enumerate(secs)
    ]
    block = frames(payload.get("block_seconds", 60.0))
    models, runs = {}, {}
    for impl in payload["impls"]:
        if impl == "theirs":
            models[impl] = official_encoder(module, payload["config"]).to(device, dtype)
        else:
            models[impl] = random_model(
                asr_config(payload["config"]), device, payload["dtype"]
            )
    if payload["task"] == "longform":
        inputs = make([payload["seconds"]])
        runs["theirs"] = lambda m, x: official_longform(m, x[0], c, left, r)
        runs["ours"] = lambda m, x: ours_longform(m, x[0], g, block)
        warm = make([60.0])
    else:
        inputs = make(payload["durations"])
        runs["theirs"] = lambda m, x: official_batch(m, x, c, left, r)
        runs["ours"] = lambda m, x: ours_batch(m, x, g)
        warm = make([1.0, 30.0, 60.0])
    before = checksum(inputs)
    results = []
    for impl in payload["impls"]:
        model, run = models[impl], runs[impl]
        with torch.inference_mode():
            run(model, warm)
            synchronize(device)
            reset_cuda_peak(device)
            rss_before = peak_rss_mib()
            start = time.perf_counter()
            run(model, inputs)
            synchronize(device)
            seconds = time.perf_counter() - start
        peak = cuda_peak_gib(device)
        if checksum(inputs) != before:
            raise RuntimeError(f"{impl} changed its input")
        results.append(
            {
                "impl": impl,
                "seconds": seconds,
                "gpu_peak_gib": peak,
                "rss_peak_mib": peak_rss_mib(),
                "rss_before_mib": rss_before,
                "input": before,
                "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
            }
        )
        del model
        models.pop(impl)
        reset_cuda_peak(device)
    report({"results": results})


# -------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--wheel", default=str(DEFAULT_WHEEL))
    p.add_argument("--configs", default="small,large")
    p.add_argument("--dtype", default="fp32,bf16")
    p.add_argument("--longform", default="3600,14400", help="seconds, comma list")
    p.add_argument("--long", action="store_true", help="add 16 h to --longform")
    p.add_argument("--batch", default=PAPER_SET, help="masked batch set; '' skips")
    p.add_argument("--geometry", default="64,128,128", help="C,L,R encoder frames")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument(
        "--block-seconds",
        type=float,
        default=60.0,
        help="ours: seconds pushed per EncoderPipeline call (theirs: 900 s windows)",
    )
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    if not Path(args.wheel).is_file():
        raise SystemExit(
            f"{args.wheel}: no wheel; run: pip download "
            "chunkformer==1.2.2 --no-deps -d .carry/chunkformer"
        )
    longform = parse_durations(args.longform) + ([57600.0] if args.long else [])
    batch = parse_durations(args.batch)
    tasks = [("longform", s) for s in longform] + ([("batch", 0.0)] if batch else [])
    # one process for both on a GPU (peaks are reset); one each on the CPU (RSS)
    groups = [["theirs", "ours"]] if args.device != "cpu" else [["theirs"], ["ours"]]
    rows = []
    with tempfile.TemporaryDirectory() as unzip:
        for config in args.configs.split(","):
            for dtype in args.dtype.split(","):
                for task, seconds in tasks:
                    pair = {}
                    for impls in groups:
                        payload = {
                            "device": args.device,
                            "dtype": dtype,
                            "config": config,
                            "task": task,
                            "seconds": seconds,
                            "durations": batch,
                            "geometry": args.geometry,
                            "threads": args.threads,
                            "wheel": args.wheel,
                            "unzip": unzip,
                            "impls": impls,
                            "block_seconds": args.block_seconds,
                        }
                        out = run_worker(__file__, payload)
                        for result in out.get("results", []):
                            pair[result["impl"]] = result
                        if "error" in out:
                            for impl in impls:
                                pair[impl] = {"impl": impl, "error": out["error"]}
                    audio = seconds if task == "longform" else sum(batch)
                    label = f"batch {len(batch)} utts"
                    if task == "longform":
                        label = f"long-form {seconds:g} s"
                    row = {
                        "config": config,
                        "dtype": dtype,
                        "task": label,
                        "audio_s": audio,
                    }
                    for impl, result in pair.items():
                        if "error" in result:
                            row["error"] = result["error"]
                            continue
                        row[f"{impl}_s"] = result["seconds"]
                        row[f"{impl}_rtfx"] = audio / result["seconds"]
                        row[f"{impl}_gib"] = result["gpu_peak_gib"]
                        row[f"{impl}_rss_mib"] = result["rss_peak_mib"]
                        row[f"{impl}_params_m"] = result["parameters_m"]
                        row["input"] = result["input"]
                    if "theirs_s" in row and "ours_s" in row:
                        row["speedup"] = row["theirs_s"] / row["ours_s"]
                        mem = "gib" if row.get("ours_gib") else "rss_mib"
                        row["memory_ratio"] = row[f"ours_{mem}"] / row[f"theirs_{mem}"]
                    rows.append(row)
                    print(f"# {row}", file=sys.stderr, flush=True)
    print(
        f"geometry {args.geometry}, device {args.device}, {machine()}; "
        "speedup = their seconds / ours; memory_ratio = ours / theirs"
    )
    columns = [
        "config",
        "dtype",
        "task",
        "audio_s",
        "theirs_s",
        "theirs_rtfx",
        "theirs_gib",
        "ours_s",
        "ours_rtfx",
        "ours_gib",
        "speedup",
        "memory_ratio",
        "theirs_rss_mib",
        "ours_rss_mib",
        "theirs_params_m",
        "ours_params_m",
        "input",
        "error",
    ]
    print(markdown_table(rows, columns))
    write_json(args.json, {"args": vars(args), "machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
