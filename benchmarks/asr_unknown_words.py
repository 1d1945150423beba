"""How many words of a recognizer's transcripts its word LM does not know:
the count that showed beam search running words together into one unknown
word ("marginatbidsathtubs"), and what the spelling cost of unknown words
(``LmFusion(oov_penalty=...)``) changed.

    python -m recipes.asr.evaluate --manifest test.jsonl --beam-size 16 \
        --json before.json [--oov-penalty 0]
    python benchmarks/asr_unknown_words.py --manifest test.jsonl \
        --lm speech/models/asr/lm.arpa.gz before.json after.json

Reads the transcripts of ``recipes.asr.evaluate --json`` reports and prints,
per report and geometry, the transcript words outside the LM's vocabulary,
against the same count for the references (words that no LM knows however
well they are read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recipes.common import read_manifest  # noqa: E402
from speech.asr.lm import NgramLM  # noqa: E402
from speech.text.normalize import asr_transcript  # noqa: E402


def unknown(text: str, vocabulary: set[str]) -> int:
    return sum(word not in vocabulary for word in text.split())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", help="recipes.asr.evaluate --json files")
    p.add_argument("--manifest", required=True, help="the reports' manifest")
    p.add_argument("--lm", default="speech/models/asr/lm.arpa.gz")
    args = p.parse_args(argv)

    vocabulary = set(NgramLM.load(args.lm).entries.words())
    utterances = read_manifest(args.manifest)
    texts = [asr_transcript(u.text) for u in utterances]
    references = sum(unknown(text, vocabulary) for text in texts)
    words = sum(len(text.split()) for text in texts)
    print("| report | geometry | unknown words in transcripts | in references |")
    print("|---|---|---|---|")
    for report in args.reports:
        hypotheses = json.loads(Path(report).read_text())["hypotheses"]
        missing = [u.audio for u in utterances if u.audio not in hypotheses]
        if missing:
            raise SystemExit(f"{report}: no transcript of {missing[0]}")
        for geometry in ("full", "offline", "streaming"):
            count = sum(
                unknown(hypotheses[u.audio][geometry], vocabulary) for u in utterances
            )
            print(f"| {report} | {geometry} | {count} | {references} |")
    print(f"\n{len(utterances)} utterances, {words} words, {args.manifest}")


if __name__ == "__main__":
    main()
