"""Average the weights of model folders that share one training lineage.

Fine-tuning runs that start from one model stay in its basin, and the mean
of their weights often recognises better than any of them (stage 18 of the
shipped model is stage 17 averaged with its own fine-tune on an H100). The
folders must have the same configuration, tokenizer and feature statistics:
models trained from different starts are refused, since averaging them only
mixes unrelated solutions::

    python -m recipes.asr.average --out runs/avg runs/a/best runs/b/best
    python -m recipes.asr.average --out runs/avg m1 m2 --weights 2 1

Weights are averaged in float32 (optionally weighted; the weights are
normalised to sum to 1) and written as a model folder like any other
(fp16 unless ``--fp32``, atomically, sharded under 16 MB per file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from speech.asr.config import AsrConfig
from speech.asr.model import AsrModel, load_state, save_model


def average_states(
    states: list[dict[str, torch.Tensor]], weights: list[float]
) -> dict[str, torch.Tensor]:
    """The weighted mean of float tensors; other tensors (and the feature
    statistics) must agree and are taken from the first state."""
    first = states[0]
    total = float(sum(weights))
    mean: dict[str, torch.Tensor] = {}
    for name, value in first.items():
        if not value.is_floating_point() or name.startswith("feature_"):
            mean[name] = value
            continue
        acc = torch.zeros_like(value, dtype=torch.float32)
        for state, weight in zip(states, weights, strict=True):
            acc += state[name].float() * (weight / total)
        mean[name] = acc
    return mean


def check_compatible(
    folders: list[Path], states: list[dict[str, torch.Tensor]]
) -> None:
    """ValueError naming the first folder that differs from the first one in
    configuration, tokenizer, weight names and shapes, or feature statistics."""
    reference = folders[0]
    config = AsrConfig.load(reference / "config.json")
    tokenizer = (reference / "tokenizer.model").read_bytes()
    for folder, state in zip(folders[1:], states[1:], strict=True):
        if AsrConfig.load(folder / "config.json") != config:
            raise ValueError(f"{folder}: its config.json differs from {reference}'s")
        if (folder / "tokenizer.model").read_bytes() != tokenizer:
            raise ValueError(f"{folder}: its tokenizer differs from {reference}'s")
        if state.keys() != states[0].keys():
            raise ValueError(f"{folder}: its weights are not named as {reference}'s")
        for name, value in state.items():
            base = states[0][name]
            if value.shape != base.shape:
                raise ValueError(
                    f"{folder}: {name} has shape {tuple(value.shape)}, "
                    f"{tuple(base.shape)} in {reference}"
                )
            if (name.startswith("feature_") or not value.is_floating_point()) and (
                not torch.allclose(value.float(), base.float(), rtol=1e-4, atol=1e-6)
            ):
                raise ValueError(
                    f"{folder}: {name} differs from {reference}'s; only models "
                    "fine-tuned from one start can be averaged"
                )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="model folders")
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument(
        "--weights",
        nargs="+",
        type=float,
        help="one weight per model (default: equal)",
    )
    p.add_argument("--fp32", action="store_true", help="keep float32 weights")
    args = p.parse_args(argv)
    if len(args.models) < 2:
        p.error("give at least two model folders")
    weights = args.weights or [1.0] * len(args.models)
    if len(weights) != len(args.models):
        p.error(f"--weights: {len(weights)} values for {len(args.models)} models")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        p.error("--weights: need values >= 0 with a positive sum")
    try:
        for folder in args.models:
            for name in ("config.json", "tokenizer.model"):
                if not (folder / name).is_file():
                    raise FileNotFoundError(f"{folder}: not a model folder (no {name})")
        states = [load_state(folder) for folder in args.models]
        check_compatible(args.models, states)
    except (FileNotFoundError, ValueError) as error:
        print(f"average: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    model = AsrModel(AsrConfig.load(args.models[0] / "config.json"))
    model.load_state_dict(average_states(states, weights))
    save_model(
        model,
        args.out,
        half=not args.fp32,
        tokenizer_file=args.models[0] / "tokenizer.model",
    )
    share = ", ".join(f"{w / sum(weights):.3g}" for w in weights)
    print(f"averaged {len(args.models)} models (weights {share}) -> {args.out}")


if __name__ == "__main__":
    main()
