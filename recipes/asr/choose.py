"""Choose between ASR models the way the shipped model is chosen: a candidate
passes only if it is better than the baseline on every choice set, both
greedy and with beam search and the word LM.

    python -m recipes.asr.choose runs/asr/model runs/mean \
        --baseline speech/models/asr --sets dev.jsonl tune.jsonl \
        --lm speech/models/asr/lm.arpa.gz

The sets are the training voices' dev set (unseen sentences) and a tuning set
of voices the model never hears (``build_corpus --tune-voices``): the test
set is read only for the model chosen here, once. The measure is the mean
WER of the three geometries (full context, offline, streaming) that
``recipes.asr.evaluate`` reports. Each model is read on each set greedy and
with ``--beam-size`` (default 16) and ``--lm`` (default: each model folder's
own ``lm.arpa.gz``; ``--lm none`` reads greedy only). ``--test MANIFEST``
names the test set the chosen model is to be read on: a choice set that
shares a sentence with it is refused before anything is read (choosing on
test sentences, even read by other voices, tunes the choice to the test
set). Prints one table row per
model and, of the candidates that pass, the one with the lowest mean over
all the readings. A model or set that cannot be read is reported in one line,
and the other models are still read.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from recipes.asr import evaluate
from recipes.common import read_manifest
from speech.text.normalize import asr_transcript

GEOMETRIES = ("full", "offline", "streaming")


def mean_wer(report: dict) -> float:
    """Mean over the three geometries of a report's WER (%) on all words."""
    rows = report["table"]["all"]
    return sum(100.0 * rows[g][0] / max(rows[g][1], 1) for g in GEOMETRIES) / 3


def read(model: str, manifest: str, extra: list[str], limit: int = 0) -> float:
    """``recipes.asr.evaluate`` of ``model`` on ``manifest``, its table
    silenced; the mean WER of the three geometries."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        argv = ["--model", model, "--manifest", manifest, "--vtln", "1"]
        argv += ["--limit", str(limit)] if limit else []
        with contextlib.redirect_stdout(io.StringIO()):
            evaluate.main([*argv, *extra, "--json", str(out)])
        return mean_wer(json.loads(out.read_text()))


def read_or_none(
    model: str, manifest: str, extra: list[str], limit: int = 0
) -> float | None:
    """``read``, or None after a one-line error where it fails."""
    try:
        return read(model, manifest, extra, limit)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        print(f"error: {model} on {manifest}: {error}", file=sys.stderr)
        return None


def sentences(manifest: str) -> set[str]:
    """A manifest's sentences, as the transcripts that WER is counted on."""
    return {asr_transcript(u.text) for u in read_manifest(manifest)}


def passes(candidate: list[float | None], baseline: list[float | None]) -> bool:
    """Better than the baseline in every reading (one that either could not
    make counts against the candidate)."""
    return all(
        c is not None and b is not None and c < b
        for c, b in zip(candidate, baseline, strict=True)
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("candidates", nargs="+", help="candidate model folders")
    p.add_argument("--baseline", required=True, help="the model to beat")
    p.add_argument("--sets", nargs="+", required=True, help="JSONL choice sets")
    p.add_argument("--beam-size", type=int, default=16)
    p.add_argument(
        "--limit", type=int, default=0, help="first N utterances of each set"
    )
    p.add_argument(
        "--lm",
        default="auto",
        help="word LM for the beam readings ('auto': each model folder's "
        "lm.arpa.gz; 'none': greedy readings only)",
    )
    p.add_argument(
        "--test",
        help="the test set the chosen model is to be read on: a choice set "
        "that shares a sentence with it is refused",
    )
    args = p.parse_args(argv)
    if args.beam_size < 2:
        p.error(f"--beam-size {args.beam_size}: need 2 or more")

    for manifest in args.sets:
        if not Path(manifest).is_file():
            p.error(f"--sets: {manifest}: no such file")
    if args.test is not None:
        if not Path(args.test).is_file():
            p.error(f"--test: {args.test}: no such file")
        test = sentences(args.test)
        for manifest in args.sets:
            shared = len(sentences(manifest) & test)
            if shared:
                p.error(
                    f"--sets: {manifest} shares {shared} of its sentences with "
                    f"the test set {args.test}; choose on other sentences "
                    "(build_corpus --held-out-sentences)"
                )

    readings = [("greedy", [])]
    if args.lm != "none":
        beam = ["--beam-size", str(args.beam_size), "--lm", args.lm]
        readings.append((f"beam {args.beam_size} + LM", beam))
    columns = [(s, name, extra) for s in args.sets for name, extra in readings]
    header = [f"{Path(s).name}, {name}" for s, name, _ in columns]
    print(f"| model | {' | '.join(header)} | passes |")
    print("|---|" + "---|" * len(columns) + "---|")

    results: dict[str, list[float | None]] = {}
    for model in [args.baseline, *args.candidates]:
        if (Path(model) / "config.json").is_file():
            row = [read_or_none(model, m, extra, args.limit) for m, _, extra in columns]
        else:
            print(
                f"error: {model}: not a model folder (no config.json)", file=sys.stderr
            )
            row = [None] * len(columns)
        results[model] = row
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in row)
        verdict = (
            "baseline"
            if model == args.baseline
            else ("yes" if passes(row, results[args.baseline]) else "no")
        )
        print(f"| {model} | {cells} | {verdict} |", flush=True)

    passing = [m for m in args.candidates if passes(results[m], results[args.baseline])]
    if not passing:
        print("\nno candidate is better on every set in every reading")
        return
    best = min(passing, key=lambda m: sum(results[m]) / len(results[m]))
    print(f"\nchosen: {best} (read it on the test set, once)")


if __name__ == "__main__":
    main()
