"""WER of beam search with a word LM over a grid of fusion weights, word
bonuses, spelling costs of unknown words, beam sizes and LM files: how the
shipped defaults were chosen.

    python benchmarks/asr_lm_sweep.py --manifest data/asr/dev.jsonl \
        --lm speech/models/asr/lm.arpa.gz --weights 0.3,0.5,0.8 \
        --bonuses 1,2,3.5 --oov-penalties 0,1 --beams 16

The manifest is encoded once per geometry (full context and the model's
streaming geometry, masked batching; ``--vtln`` as ``speech transcribe``'s,
a warp ensemble too); every grid point then decodes the same
log-probabilities through ``Recognizer.decode``, the path ``speech
transcribe`` and ``recipes.asr.evaluate`` take. Tune on a dev set, not on the
test set the README reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.common import read_manifest  # noqa: E402
from speech.asr.config import ChunkGeometry  # noqa: E402
from speech.asr.lm import DEFAULT_OOV_PENALTY, NgramLM  # noqa: E402
from speech.asr.metrics import word_error_rate  # noqa: E402
from speech.asr.recognizer import Recognizer, load_recognizer  # noqa: E402
from speech.audio import load_audio  # noqa: E402
from speech.cli import add_vtln_argument  # noqa: E402
from speech.text.normalize import asr_transcript  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def encode(
    recognizer: Recognizer,
    paths: list[str],
    geometry: ChunkGeometry,
    batch_seconds: float,
):
    """(log-probabilities, seconds) of every input, in order."""
    out, batch, total = [], [], 0.0
    rate = recognizer.sample_rate

    def run() -> None:
        # with the edge silence and the VTLN setting (a warp ensemble too), as
        # transcribe and evaluate decode
        for samples, log_probs in zip(
            batch, recognizer.log_probs(batch, geometry), strict=True
        ):
            out.append((log_probs, len(samples) / rate))

    for path in paths:
        samples = load_audio(path, rate)
        if batch and total + len(samples) / rate > batch_seconds:
            run()
            batch, total = [], 0.0
        batch.append(samples)
        total += len(samples) / rate
    if batch:
        run()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--manifest", required=True, help="a dev set (JSONL)")
    p.add_argument("--lm", nargs="+", required=True, help="ARPA files to compare")
    p.add_argument("--weights", type=_floats, default=[0.3, 0.5, 0.8])
    p.add_argument("--bonuses", type=_floats, default=[1.0, 2.0, 3.5])
    p.add_argument(
        "--oov-penalties",
        type=_floats,
        default=[DEFAULT_OOV_PENALTY],
        help="scores taken per letter of a word the LM does not know",
    )
    p.add_argument(
        "--beams", type=lambda t: [int(x) for x in t.split(",")], default=[16]
    )
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--batch-seconds", type=float, default=600.0)
    add_vtln_argument(p)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()

    base = load_recognizer(args.model, lm=None, vtln=args.vtln)
    utterances = read_manifest(args.manifest)
    if args.limit:
        utterances = utterances[: args.limit]
    references = [asr_transcript(u.text) for u in utterances]
    geometries = {
        "full": ChunkGeometry(100_000, 0, 0),
        "streaming": base.config.streaming,
    }
    encoded = {
        name: encode(base, [u.audio for u in utterances], g, args.batch_seconds)
        for name, g in geometries.items()
    }
    lms = {path: NgramLM.load(path) for path in args.lm}

    def wer(recognizer: Recognizer, name: str) -> float:
        pairs = (
            (reference, asr_transcript(recognizer.decode(log_probs, seconds).text))
            for (log_probs, seconds), reference in zip(
                encoded[name], references, strict=True
            )
        )
        return round(word_error_rate(pairs), 2)

    points = [("greedy", None, 1, None, None, None)]
    points += [("beam, no LM", None, b, None, None, None) for b in args.beams]
    points += [
        (Path(path).name, path, b, w, bonus, oov)
        for path in args.lm
        for b in args.beams
        for w in args.weights
        for bonus in args.bonuses
        for oov in args.oov_penalties
    ]
    rows = []
    print(
        "| LM | beam | weight | word bonus | OOV penalty | WER full % "
        "| WER streaming % | decode s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, path, beam, weight, bonus, oov in points:
        options = (
            {}
            if path is None
            else {"lm_weight": weight, "word_bonus": bonus, "oov_penalty": oov}
        )
        recognizer = Recognizer(
            base.backend, beam_size=beam, lm=lms.get(path), vtln=base.vtln, **options
        )
        started = time.monotonic()
        row = {
            "lm": label,
            "beam": beam,
            "weight": weight,
            "word_bonus": bonus,
            "oov_penalty": oov,
            "full": wer(recognizer, "full"),
            "streaming": wer(recognizer, "streaming"),
            "decode_seconds": round(time.monotonic() - started, 1),
        }
        rows.append(row)
        print(
            f"| {label} | {beam} | {weight if weight is not None else '-'} "
            f"| {bonus if bonus is not None else '-'} "
            f"| {oov if oov is not None else '-'} | {row['full']:.2f} "
            f"| {row['streaming']:.2f} | {row['decode_seconds']} |",
            flush=True,
        )
    words = sum(len(r.split()) for r in references)
    print(f"\n{len(utterances)} utterances, {words} words, {args.manifest}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
