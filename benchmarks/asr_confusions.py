"""Which words a model gets wrong, voice by voice: the substitutions of an
eval run (``recipes.asr.evaluate --json``), aligned word by word against the
manifest's references, most frequent first, with how many of them put a
``sh`` or ``ch`` where the reference has none (a sign that a voice's /s/
reads as /sh/, as the held-out flite voice ``rms``'s does).

    python -m recipes.asr.evaluate --model speech/models/asr \
        --manifest test.jsonl --vtln 1 --json greedy.json
    python benchmarks/asr_confusions.py --report greedy.json \
        --manifest test.jsonl --geometry full --top 15

It reads reports only; no model runs. Hypotheses whose audio the manifest
does not list are counted and left out.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.common import read_manifest  # noqa: E402
from speech.text.normalize import asr_transcript  # noqa: E402


def palatal(ref: str, hyp: str) -> bool:
    """The hypothesis has a ``sh`` or ``ch`` that the reference word lacks."""
    return any(g in hyp and g not in ref for g in ("sh", "ch"))


def confusions(
    hypotheses: dict[str, dict[str, str]],
    references: dict[str, tuple[str, str]],
    geometry: str,
) -> tuple[dict[str, dict], int]:
    """Per voice: words, substitutions (Counter of (ref, hyp)), deletions,
    insertions; and the number of hypotheses with no reference."""
    voices: dict[str, dict] = defaultdict(
        lambda: {"words": 0, "subs": Counter(), "deletions": 0, "insertions": 0}
    )
    unknown = 0
    for audio, by_geometry in hypotheses.items():
        if audio not in references or geometry not in by_geometry:
            unknown += 1
            continue
        text, voice = references[audio]
        ref = asr_transcript(text).split()
        hyp = by_geometry[geometry].split()
        row = voices[voice]
        row["words"] += len(ref)
        matcher = difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "replace":
                pairs = list(zip(ref[i1:i2], hyp[j1:j2], strict=False))
                row["subs"].update(pairs)
                row["deletions"] += max(0, (i2 - i1) - (j2 - j1))
                row["insertions"] += max(0, (j2 - j1) - (i2 - i1))
            elif op == "delete":
                row["deletions"] += i2 - i1
            elif op == "insert":
                row["insertions"] += j2 - j1
    return dict(voices), unknown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", type=Path, required=True, help="evaluate --json output")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--geometry", default="full")
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    try:
        hypotheses = json.loads(args.report.read_text())["hypotheses"]
    except (OSError, ValueError, KeyError) as error:
        p.error(f"{args.report}: not an evaluate --json report ({error})")
    # keyed as recipes.asr.evaluate keys its hypotheses (read_manifest's path)
    references = {u.audio: (u.text, u.speaker) for u in read_manifest(args.manifest)}
    voices, unknown = confusions(hypotheses, references, args.geometry)
    if not voices:
        p.error(f"no hypothesis of geometry {args.geometry!r} matches the manifest")
    print(
        "| voice | words | substitutions | of them sh/ch for none "
        "| deletions | insertions |"
    )
    print("|---|---|---|---|---|---|")
    for voice in sorted(voices):
        row = voices[voice]
        subs = sum(row["subs"].values())
        pal = sum(n for (r, h), n in row["subs"].items() if palatal(r, h))
        print(
            f"| {voice} | {row['words']} | {subs} | {pal} | "
            f"{row['deletions']} | {row['insertions']} |"
        )
    for voice in sorted(voices):
        common = voices[voice]["subs"].most_common(args.top)
        print(f"\n{voice}: " + ", ".join(f"{r} -> {h} ({n})" for (r, h), n in common))
    if unknown:
        print(f"\n{unknown} hypotheses not in the manifest (left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
