"""Write a loadable model folder from a training checkpoint.

A run stopped before its end (a lost machine, a budget spent) keeps only
``checkpoint.pt``; this turns that checkpoint into the folder that
``speech.asr.load_model`` reads, without touching the run::

    python -m recipes.asr.export_checkpoint --run exp/asr --out exp/asr/model_step
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from recipes.asr.train import model_config
from speech.asr.model import AsrModel, save_model
from speech.asr.tokenizer import Tokenizer


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--run", required=True, help="training folder (checkpoint.pt, tokenizer.model)"
    )
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights")
    args = p.parse_args(argv)
    run = Path(args.run)
    checkpoint = torch.load(
        run / "checkpoint.pt", map_location="cpu", weights_only=False
    )
    state = checkpoint["model"]
    tokenizer = Tokenizer.load(run / "tokenizer.model")
    model = AsrModel(model_config(checkpoint["args"], tokenizer.vocab_size))
    model.load_state_dict(state)
    model.tokenizer = tokenizer
    save_model(
        model, args.out, half=not args.fp32, tokenizer_file=run / "tokenizer.model"
    )
    print(f"step {checkpoint['step']}: wrote {args.out}")


if __name__ == "__main__":
    main()
