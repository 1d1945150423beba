"""Greedy WER of ASR models in float32 and under bf16 autocast: does a model
read worse, or better, when its arithmetic runs in bf16 at inference?

    python benchmarks/asr_autocast.py --manifest dev.jsonl --limit 200 \
        --model speech/models/asr runs/a/model runs/b/model

Stage 22 of docs/asr_model_history.md used it to tell a bf16 *training* harm from
a train/inference mismatch: a model trained under bf16 autocast that read
better under autocast than in float32 would have learnt bf16's rounding.
Each model is scored with the trainer's own dev evaluation
(``recipes.asr.train.validate``: full context, the default offline and
streaming geometries, batches of padded features) on the first ``--limit``
utterances, once in float32 and once under ``torch.autocast`` with bf16 on
``--device`` (the CPU's autocast where there is no GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.asr.train import validate  # noqa: E402
from recipes.common import read_manifest, read_wav  # noqa: E402
from speech.asr.model import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True, help="a JSONL manifest")
    p.add_argument("--model", nargs="+", default=["speech/models/asr"])
    p.add_argument("--limit", type=int, default=200, help="first N utterances")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    utterances = read_manifest(args.manifest)[: args.limit]
    print("| model | precision | WER full % | WER offline % | WER streaming % |")
    print("|---|---|---|---|---|")
    audio = None
    for folder in args.model:
        model = load_model(folder, device)
        if audio is None:
            rate = model.config.sample_rate
            audio = [(u, read_wav(u.audio, rate)) for u in utterances]
        for precision in ("fp32", "bf16"):
            with torch.autocast(
                device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
            ):
                wers = validate(model, audio, model.tokenizer, device)
            cells = " | ".join(
                f"{wers[k]:.2f}" for k in ("full", "offline", "streaming")
            )
            print(f"| {folder} | {precision} | {cells} |", flush=True)
    print(f"\n{len(audio or [])} utterances of {args.manifest}, device {device}")


if __name__ == "__main__":
    main()
