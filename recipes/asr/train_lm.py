"""Estimate the word n-gram language model that beam search fuses in.

    python -m recipes.asr.train_lm --min-words 1 --max-words 100 \\
        --extra-text .carry/wordnet.txt.gz \\
        --exclude data/asr/test.jsonl data/asr/dev.jsonl \\
        --lexicon /usr/share/dict/american-english-large --unk-penalty 3 \\
        --out speech/models/asr/lm.arpa.gz

(the shipped LM: every cleaned fortunes sentence of 1-100 words, the ASR
corpus takes those of 3-30 words, and WordNet's 164,000 definitions and
examples (``python -m recipes.data.sentences --source wordnet``), plus
Debian's ``wamerican-large`` word list, so that beam search can spell words
no sentence has and a spelling the list lacks scores 3 log10 below one it
has).

Reads sentences the way the corpus builder does (``--text-file``, or
Debian's fortunes without one) and/or the transcripts of JSONL manifests
(``--manifest``), normalises them to the recogniser's transcript form, drops
every sentence found in an ``--exclude`` manifest (the evaluation sets: a
language model that has seen the test sentences would flatter the WER), and
writes an interpolated Kneser-Ney model in ARPA format (gzip for ``.gz``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from recipes.common import read_manifest
from recipes.data.sentences import FORTUNES_DIR, load_sentences
from speech.asr.lm import NgramLM
from speech.text.normalize import asr_transcript

logger = logging.getLogger("recipes.asr.train_lm")


def lm_sentences(args: argparse.Namespace) -> list[list[str]]:
    # the text file, or the fortunes when neither it nor a manifest is given
    main = [args.text_file] if args.text_file or not args.manifest else []
    transcripts = [
        sentence.key
        for text in [*main, *args.extra_text]
        for sentence in load_sentences(
            text, args.fortunes_dir, args.min_words, args.max_words
        )
    ]
    for manifest in args.manifest:
        transcripts += [asr_transcript(u.text) for u in read_manifest(manifest)]
    excluded = {asr_transcript(u.text) for m in args.exclude for u in read_manifest(m)}
    kept, seen, dropped = [], set(), 0
    for transcript in transcripts:
        if transcript in excluded:
            dropped += 1
        elif transcript and transcript not in seen:
            seen.add(transcript)
            kept.append(transcript.split())
    logger.info(
        "%d sentences (%d words), %d excluded as evaluation text",
        len(kept),
        sum(map(len, kept)),
        dropped,
    )
    return kept


def lexicon_words(paths: list[Path]) -> set[str]:
    """The single words of word lists, in transcript form (one per line;
    entries that normalise to several words or none are left out)."""
    words: set[str] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            transcript = asr_transcript(line.strip())
            if transcript and " " not in transcript:
                words.add(transcript)
    if paths:
        logger.info("%d lexicon words from %s", len(words), ", ".join(map(str, paths)))
    return words


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--text-file", type=Path, help="sentences, one per line")
    p.add_argument("--fortunes-dir", type=Path, default=FORTUNES_DIR)
    p.add_argument(
        "--extra-text",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="more sentences beside --text-file or the fortunes (.gz too), "
        "e.g. python -m recipes.data.sentences --source wordnet",
    )
    p.add_argument("--manifest", nargs="*", default=[], help="JSONL manifests")
    p.add_argument(
        "--exclude", nargs="*", default=[], help="manifests whose text is left out"
    )
    p.add_argument("--min-words", type=int, default=3)
    p.add_argument("--max-words", type=int, default=30)
    p.add_argument("--order", type=int, default=3)
    p.add_argument(
        "--lexicon",
        type=Path,
        nargs="*",
        default=[],
        help="word lists (one word per line, e.g. /usr/share/dict/"
        "american-english-large): words the LM knows without example sentences",
    )
    p.add_argument(
        "--unk-penalty",
        type=float,
        default=0.0,
        help="log10 by which <unk> sits below the lexicon's words",
    )
    p.add_argument("--out", type=Path, required=True, help="ARPA file (.gz: gzip)")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    sentences = lm_sentences(args)
    lexicon = lexicon_words(args.lexicon)
    lm = NgramLM.estimate(sentences, args.order, lexicon, args.unk_penalty)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lm.save(args.out)
    counts = lm.entries.counts()
    print(json.dumps({"out": str(args.out), "order": lm.order, "ngrams": counts}))


if __name__ == "__main__":
    main()
