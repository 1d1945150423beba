"""Where in a sentence a recognizer's errors fall, and what silence at the
edges of the audio changes: WER per voice and the share of the first,
middle and last words of each sentence that come out wrong (substituted or
deleted), with the audio as it is and with silence added before and after.

    python benchmarks/asr_edges.py --model speech/models/asr \
        --manifest test.jsonl --pads 0:0 0:0.3 0.3:0.6

The corpus builder trims its utterances to 50 ms of silence at each end. A
model trained only on such audio has never had a margin after the last
word, and its last words come out wrong about twice as often as the others
(docs/asr_model_history.md, "Edges"); ``--pads`` measures how much of that a
margin given at decoding time wins back (the recognizer's own edge
padding, 0:0.64 by default, is off here: the pads are all the silence there
is). Decoding is full context
(``--geometry`` for another), greedy unless ``--beam-size`` is given, through
``Recognizer.transcribe_many`` on padded copies of the files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
from _common import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.common import read_manifest, read_wav  # noqa: E402
from speech.asr.config import ChunkGeometry  # noqa: E402
from speech.asr.recognizer import load_recognizer  # noqa: E402
from speech.text.normalize import asr_transcript  # noqa: E402

POSITIONS = ("first", "middle", "last")


def wrong_words(reference: str, hypothesis: str) -> list[bool]:
    """For each reference word, whether the alignment substitutes or deletes
    it (insertions belong to no reference word)."""
    words = reference.split()
    wrong = [False] * len(words)
    if not words:
        return wrong
    alignment = jiwer.process_words(reference, hypothesis or "").alignments[0]
    for chunk in alignment:
        if chunk.type in ("substitute", "delete"):
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                wrong[i] = True
    return wrong


def position(index: int, count: int) -> str:
    """A one-word sentence's word counts as its last."""
    if index == count - 1:
        return "last"
    return "first" if index == 0 else "middle"


def edge_table(
    pairs: list[tuple[str, str, str]],
) -> list[dict[str, object]]:
    """Rows of WER and per-position error rates (percent), one per group and
    one for all, from (group, reference, hypothesis) triples of normalised
    transcripts."""
    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for group, reference, hypothesis in pairs:
        by_group[group].append((reference, hypothesis))
    by_group["all"] = [(r, h) for _, r, h in pairs]
    rows = []
    for group, items in sorted(by_group.items(), key=lambda kv: kv[0] == "all"):
        items = [(r, h) for r, h in items if r]
        wrong: dict[str, list[bool]] = defaultdict(list)
        for reference, hypothesis in items:
            flags = wrong_words(reference, hypothesis)
            for i, flag in enumerate(flags):
                wrong[position(i, len(flags))].append(flag)
        wer = jiwer.wer([r for r, _ in items], [h for _, h in items])
        row: dict[str, object] = {"voice": group, "WER %": 100 * wer}
        for name in POSITIONS:
            flags = wrong[name]
            row[f"{name} words wrong %"] = 100 * np.mean(flags) if flags else None
        row["words"] = sum(len(r.split()) for r, _ in items)
        rows.append(row)
    return rows


def parse_pad(text: str) -> tuple[float, float]:
    try:
        before, after = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a pad is BEFORE:AFTER in seconds, e.g. 0.3:0.6"
        ) from None
    if before < 0 or after < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be >= 0")
    return before, after


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: shipped)")
    p.add_argument("--manifest", required=True, help="a JSONL manifest")
    p.add_argument("--pads", nargs="+", type=parse_pad, default=[(0.0, 0.0)])
    p.add_argument("--limit", type=int, default=0, help="first N utterances")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument(
        "--geometry",
        type=int,
        nargs=3,
        metavar=("C", "L", "R"),
        help="chunk size, left and right context (default: full context)",
    )
    args = p.parse_args(argv)
    utterances = read_manifest(args.manifest)[: args.limit or None]
    # the pads are the only silence added: none of the recognizer's own
    recognizer = load_recognizer(args.model, edge_padding=(0.0, 0.0))
    geometry = (
        ChunkGeometry(*args.geometry) if args.geometry else ChunkGeometry(100000, 0, 0)
    )
    rate = recognizer.sample_rate
    audio = [read_wav(u.audio, rate) for u in utterances]
    for before, after in args.pads:
        with tempfile.TemporaryDirectory() as folder:
            paths = []
            for i, samples in enumerate(audio):
                padded = np.concatenate(
                    [
                        np.zeros(int(before * rate), np.float32),
                        samples,
                        np.zeros(int(after * rate), np.float32),
                    ]
                )
                paths.append(str(Path(folder) / f"{i}.wav"))
                sf.write(paths[-1], padded, rate, subtype="PCM_16")
            results = dict(
                recognizer.transcribe_many(
                    paths, geometry=geometry, beam_size=args.beam_size
                )
            )
        pairs = []
        for utterance, path in zip(utterances, paths, strict=True):
            result = results[path]
            if isinstance(result, Exception):
                print(f"{utterance.audio}: {result}", file=sys.stderr)
                continue
            pairs.append(
                (
                    utterance.speaker,
                    asr_transcript(utterance.text),
                    asr_transcript(result.text),
                )
            )
        rows = edge_table(pairs)
        print(f"\nsilence added: {before:g} s before, {after:g} s after")
        print(markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
