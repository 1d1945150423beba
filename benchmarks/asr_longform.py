"""Long-form recognition: real-time factor and peak memory against duration.

    python benchmarks/asr_longform.py --device cpu --durations 60,600,3600,14400
    python benchmarks/asr_longform.py --device cpu --end-to-end --durations 60,600
    python benchmarks/asr_longform.py --end-to-end --durations 600 --vtln 0.85,1,1.15
    python benchmarks/asr_longform.py --device cuda --durations 3600,14400,86400 \
        --dtype bf16 --json longform.json

Encoder only (default): ``EncoderPipeline`` over real log-mel features of a
speech-like signal tiled to the duration, pushed in blocks of
``--block-seconds`` (made on the device block by block, so nothing of size
proportional to the duration exists); the CTC log-probabilities it emits are
dropped. ``--end-to-end``: a 16 kHz 16-bit WAV of the duration is written with
``wave`` in blocks, then ``Recognizer.transcribe(path)`` is timed: reading in
blocks, streaming fbank, the pipeline, CTC decoding. It uses ``--model`` (the
shipped model when it exists) or random weights with the default config and a
small trained tokenizer; it needs soundfile, soxr and sentencepiece.

Every duration runs in a fresh subprocess after a short warm-up; RTF = wall
seconds / audio seconds. Peak memory: RSS (whole process) and, on a GPU,
``torch.cuda.max_memory_allocated``. The last line gives max/min of each
memory column over the durations: flat memory means a ratio near 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
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
    speech_like,
    synchronize,
    tiled,
    write_json,
)

SAMPLE_RATE = 16000


def encode(
    model,
    geometry,
    pattern,
    seconds: float,
    block_seconds: float,
    device: str,
    dtype: torch.dtype,
) -> int:
    """Push ``seconds`` of tiled features in blocks; returns frames emitted."""
    from speech.asr.longform import EncoderPipeline

    pipeline = EncoderPipeline(model, geometry)
    total, block, emitted = frames(seconds), frames(block_seconds), 0
    for start in range(0, total, block):
        features = tiled(pattern, start, min(block, total - start), device, dtype)
        emitted += pipeline.push(features).shape[0]
    return emitted + pipeline.flush().shape[0]


def worker(payload: dict) -> None:
    device, dtype = payload["device"], payload["dtype"]
    if device == "cpu":
        torch.set_num_threads(payload["threads"])
    seconds = payload["duration"]
    if payload.get("wav"):
        from speech.asr.recognizer import load_recognizer, parse_vtln

        recognizer = load_recognizer(
            payload["model"], device=device, vtln=parse_vtln(payload["vtln"])
        )
        recognizer.transcribe(speech_array(10.0))  # warm-up (in-memory path)
        geometry = parse_geometry(payload["geometry"])
        run = lambda: recognizer.transcribe(payload["wav"], geometry)  # noqa: E731
    else:
        geometry = parse_geometry(payload["geometry"])
        model = random_model(asr_config(payload["config"]), device, dtype)
        pattern = feature_pattern()
        args = (payload["block_seconds"], device, DTYPES[dtype])
        encode(model, geometry, pattern, 20.0, *args)  # warm-up
        run = lambda: encode(model, geometry, pattern, seconds, *args)  # noqa: E731
    synchronize(device)
    rss_before = peak_rss_mib()
    reset_cuda_peak(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = run()
    synchronize(device)
    wall = time.perf_counter() - start
    words = len(out.text.split()) if hasattr(out, "text") else None
    report(
        {
            "duration_s": seconds,
            "dtype": dtype,
            "seconds": wall,
            "rtf": wall / seconds,
            "rtfx": seconds / wall,
            "gpu_peak_gib": cuda_peak_gib(device),
            "rss_peak_mib": peak_rss_mib(),
            "rss_before_mib": rss_before,
            "words": words,
        }
    )


def speech_array(seconds: float) -> np.ndarray:
    return speech_like(0, int(seconds * SAMPLE_RATE))


def write_wav(path: Path, seconds: float, block_seconds: float = 60.0) -> None:
    """16 kHz mono 16-bit WAV of ``speech_like``, written block by block."""
    total, block = int(seconds * SAMPLE_RATE), int(block_seconds * SAMPLE_RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        for start in range(0, total, block):
            samples = speech_like(start, min(block, total - start))
            out.writeframes((samples * 32767).astype("<i2").tobytes())


def random_model_dir(root: Path) -> Path:
    """A model folder with random weights (default config) and a small
    tokenizer, for the end-to-end path when no trained model exists."""
    from speech.asr.model import AsrModel, save_model
    from speech.asr.tokenizer import Tokenizer

    texts = [
        "the quick brown fox jumps over the lazy dog",
        "she sells sea shells by the sea shore",
        "a stitch in time saves nine and a penny saved is a penny earned",
    ]
    tokenizer = Tokenizer.train(texts * 20, 40, root / "tok")
    torch.manual_seed(0)
    config = asr_config("default").with_updates(vocab_size=tokenizer.vocab_size)
    folder = root / "model"
    save_model(AsrModel(config).eval(), folder, tokenizer_file=tokenizer.path)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--durations", default="60,600,3600,14400", help="seconds")
    p.add_argument("--dtype", default="fp32", help="encoder only: fp32, bf16, fp16")
    p.add_argument("--config", default="default", help="default, small or large")
    p.add_argument("--geometry", default="64,128,128", help="C,L,R encoder frames")
    p.add_argument("--block-seconds", type=float, default=60.0)
    p.add_argument("--end-to-end", action="store_true")
    p.add_argument("--model", default=None, help="model folder (end-to-end)")
    p.add_argument(
        "--vtln",
        default="1",
        help="end-to-end: the recognizer's VTLN setting, e.g. 0.85,1,1.15 (a "
        "warp ensemble, speech transcribe's default)",
    )
    p.add_argument("--tmp", default=None, help="folder for the WAV files")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        model = args.model
        if args.end_to_end and model is None:
            from speech.asr.model import DEFAULT_MODEL_DIR

            shipped = (DEFAULT_MODEL_DIR / "config.json").is_file()
            model = str(DEFAULT_MODEL_DIR if shipped else random_model_dir(Path(tmp)))
        for dtype in args.dtype.split(",") if not args.end_to_end else ["model"]:
            for seconds in parse_durations(args.durations):
                payload = {
                    "device": args.device,
                    "dtype": dtype,
                    "duration": seconds,
                    "config": args.config,
                    "geometry": args.geometry,
                    "block_seconds": args.block_seconds,
                    "threads": args.threads,
                    "vtln": args.vtln,
                }
                wav = Path(tmp) / "long.wav"
                if args.end_to_end:
                    start = time.perf_counter()
                    write_wav(wav, seconds)
                    print(
                        f"# wrote {seconds:.0f} s WAV in "
                        f"{time.perf_counter() - start:.1f} s",
                        file=sys.stderr,
                    )
                    payload.update(wav=str(wav), model=model)
                result = run_worker(__file__, payload)
                wav.unlink(missing_ok=True)
                result.setdefault("duration_s", seconds)
                result.setdefault("dtype", dtype)
                rows.append(result)
                print(f"# {result}", file=sys.stderr, flush=True)
    mode = "end-to-end Recognizer.transcribe" if args.end_to_end else "EncoderPipeline"
    print(
        f"{mode}, config {args.config if not args.end_to_end else model}, "
        f"geometry {args.geometry}, vtln {args.vtln}, device {args.device}, "
        f"{machine()}"
    )
    columns = [
        "duration_s",
        "dtype",
        "seconds",
        "rtf",
        "rtfx",
        "gpu_peak_gib",
        "rss_peak_mib",
        "words",
        "error",
    ]
    print(markdown_table(rows, columns))
    flat = {}
    for dtype in {r["dtype"] for r in rows}:
        for column in ("rss_peak_mib", "gpu_peak_gib"):
            values = [r[column] for r in rows if r["dtype"] == dtype and r.get(column)]
            if len(values) > 1:
                flat[f"{dtype} {column}"] = max(values) / min(values)
    print(
        "memory max/min over durations: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(flat.items()))
    )
    write_json(
        args.json,
        {
            "args": vars(args),
            "machine": machine(),
            "rows": rows,
            "memory_max_over_min": flat,
        },
    )


if __name__ == "__main__":
    main()
