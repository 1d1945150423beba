"""Sentences to read: Debian's ``fortunes`` files, cleaned, WordNet's glosses and
examples, or a user's text file.

Source: ``/usr/share/games/fortunes/*`` (package ``fortunes``), skipping the
offensive ``off/`` folder, the ``.dat`` indexes, the ``.u8`` links and the
ASCII-art, Perl and non-English files. Each fortune loses its attribution
lines ("-- Mark Twain"), speaker labels ("Q:", "Kirk:"), list markers ("(2)")
and lines that look like code, addresses or drawings (under 80 % letters,
digits and spaces); the rest is split into sentences.

A sentence is kept when it reads unambiguously, so that the words a speech
engine says are the words of its transcript:

* it starts like a sentence and ends with ``. ! ?``;
* it is no dictionary entry ("adj.", "vt.");
* it has no characters normalisation would drop, no code-like symbols, no URL;
* after ``normalize_text`` it has ``min_words..max_words`` words, no word in
  capitals of two or more letters (an engine may spell it: "NASA", "IBM") and
  no vowel-less word longer than a letter (spelled too: "hmm", "mp").

Duplicates (same ``asr_transcript``) are removed, first kept.

    python -m recipes.data.sentences --out .carry/sentences.txt

writes the cleaned, de-duplicated sentences (original spelling, one per line)
so that a machine without the ``fortunes`` package can build the same corpora
with ``--text-file``.

The fortunes give about 21,000 sentences: a model that hears them dozens of
times learns them by heart (its WER on new sentences read by its training
voices stays near its WER on new voices). WordNet (Debian's
``wordnet-base``, a permissive licence) adds about 164,000 more: the
definitions and usage examples of its synsets, each made a sentence
(capitalised, full stop), through the same filters:

    python -m recipes.data.sentences --source wordnet --out .carry/wordnet.txt.gz

for ``build_corpus --extra-train-text`` (training only; the evaluation
sentences stay fortunes). Text files may be gzipped (``.gz``).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import random
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from speech.text.normalize import (
    asr_transcript,
    dropped_characters,
    normalize_text,
    split_sentences,
)

__all__ = [
    "FORTUNES_DIR",
    "WORDNET_DIR",
    "Sentence",
    "fortune_sentences",
    "load_sentences",
    "prepare_sentences",
    "read_fortunes",
    "read_text_lines",
    "shuffled",
    "wordnet_sentences",
]

logger = logging.getLogger(__name__)

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
_WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
# Drawings, non-English text and program listings.
_SKIPPED_FILES = frozenset({"art", "ascii-art", "translate-me", "perl"})

_ATTRIBUTION = re.compile(r"^\s*(?:--|\u2014|- [A-Z])")
_SPEAKER_LABEL = re.compile(r"^\s*[A-Z][A-Za-z.' ]{0,20}:\s+(?=\S)")
_CODE_LIKE = re.compile(
    r"[{}<>\[\]\\|=_~^`@#*]|[A-Za-z]\(|://|\bwww\.|\.(?:com|org|net|edu)\b|\$ "
)
# List markers: "(2) ", "3) ", "4. " at a line start, "(5)" anywhere.
_ENUMERATOR = re.compile(
    r"(?m)^\s*(?:\(?[0-9]{1,2}\)|[0-9]{1,2}\.)\s+|\([0-9]{1,2}\)\s*"
)
# Dictionary part-of-speech marks (the "definitions" file).
_DICTIONARY = re.compile(r"\b(?:adj|adv|vt|vi|interj|prep|pron)\.")
_SENTENCE_SHAPE = re.compile(r"^[\"'(]*[A-Z0-9].*[.!?][\"')]*$")
_CAPITALS = re.compile(r"\b[A-Z]{2,}")
_WORD = re.compile(r"[A-Za-z']+")


@dataclass(frozen=True)
class Sentence:
    raw: str  # as written (cleaned)
    text: str  # normalize_text(raw): what is spoken and transcribed
    key: str  # asr_transcript(text): what de-duplication compares


def _fortune_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.iterdir()):
        if path.is_dir() or path.is_symlink() or path.suffix in (".dat", ".u8"):
            continue  # "off/" holds the offensive ones; .u8 are links
        if path.name not in _SKIPPED_FILES:
            files.append(path)
    return files


def _clean_fortune(fortune: str) -> str:
    """Drop attributions, labels and code-like lines; keep paragraph breaks."""
    fortune = re.sub(r".\x08", "", fortune)  # overstrike: "_<BS>x" underlines
    lines = []
    for line in fortune.splitlines():
        if _ATTRIBUTION.match(line) or _CODE_LIKE.search(line):
            lines.append("")  # also ends the sentence before it
            continue
        stripped = line.strip()
        letters = sum(c.isalnum() or c.isspace() for c in stripped)
        if stripped and letters < 0.8 * len(stripped):
            lines.append("")
            continue
        lines.append(_SPEAKER_LABEL.sub("", stripped))
    return _ENUMERATOR.sub(" ", "\n".join(lines))


def read_fortunes(root: Path = FORTUNES_DIR) -> Iterator[str]:
    """The cleaned text of every fortune of ``root`` (deterministic order)."""
    for path in _fortune_files(root):
        text = path.read_text(encoding="utf-8", errors="replace")
        for fortune in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            if fortune.strip():
                yield _clean_fortune(fortune)


def fortune_sentences(root: Path = FORTUNES_DIR) -> Iterator[str]:
    """Raw sentences of the fortunes, in file order."""
    for fortune in read_fortunes(root):
        yield from split_sentences(fortune, max_chars=400)


def _as_sentence(phrase: str) -> str:
    phrase = phrase.strip().strip('"').strip()
    phrase = phrase.rstrip(";:,").strip()
    if not phrase:
        return ""
    if phrase[-1] not in ".!?":
        phrase += "."
    return phrase[0].upper() + phrase[1:]


def wordnet_sentences(root: Path = WORDNET_DIR) -> Iterator[str]:
    """WordNet's definitions and usage examples as raw sentences, in file order.

    A data line ends in ``| gloss``: definitions and quoted examples
    separated by semicolons."""
    files = [root / name for name in _WORDNET_FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found: install the wordnet-base package"
        )
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.startswith(" "):  # the licence header
                    continue
                gloss = line.partition(" | ")[2]
                for part in re.split(r';\s*(?=(?:[^"]*"[^"]*")*[^"]*$)', gloss):
                    sentence = _as_sentence(part)
                    if sentence:
                        yield sentence


def read_text_lines(path: Path) -> list[str]:
    """The lines of a text file, gunzipped when its name ends in ``.gz``; a
    file that is not UTF-8 text (or not gzip, for ``.gz``) raises
    ``ValueError`` naming it."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as file:
                return file.read().splitlines()
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such text file") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable text file ({error})") from None


def _speakable(raw: str, text: str, min_words: int, max_words: int) -> bool:
    if not _SENTENCE_SHAPE.match(raw) or _CODE_LIKE.search(raw):
        return False
    if _DICTIONARY.search(raw):
        return False
    if dropped_characters(raw) or _CAPITALS.search(text):
        return False
    words = _WORD.findall(text)
    if not min_words <= len(asr_transcript(text).split()) <= max_words:
        return False
    for word in words:
        letters = word.replace("'", "")
        if len(letters) > 20:
            return False
        if len(letters) > 1 and not re.search(r"[aeiouyAEIOUY]", letters):
            return False
    return True


def _normalise(
    raws: list[str], min_words: int, max_words: int
) -> list[tuple[str, str, str] | None]:
    """(raw, text, de-duplication key) of each sentence, None where it is
    empty or not speakable."""
    out: list[tuple[str, str, str] | None] = []
    for raw in raws:
        raw = " ".join(raw.split())
        text = normalize_text(raw) if raw else ""
        if not raw or not _speakable(raw, text, min_words, max_words):
            out.append(None)
        else:
            out.append((raw, text, asr_transcript(text)))
    return out


PARALLEL_MIN_SENTENCES = 20_000  # below this, worker start-up is not worth it


def prepare_sentences(
    raw_sentences: Iterable[str],
    min_words: int = 3,
    max_words: int = 30,
    jobs: int = 1,
) -> list[Sentence]:
    """Normalise, filter and de-duplicate sentences (first occurrence kept).

    With ``jobs`` > 1 a large text is normalised by that many processes, in
    order: the result is the same as with one."""
    raws = list(raw_sentences)
    if jobs > 1 and len(raws) >= PARALLEL_MIN_SENTENCES:
        size = -(-len(raws) // (4 * jobs))
        chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
        with ProcessPoolExecutor(jobs) as pool:
            parts = pool.map(
                _normalise, chunks, [min_words] * len(chunks), [max_words] * len(chunks)
            )
            normalised = [item for part in parts for item in part]
    else:
        normalised = _normalise(raws, min_words, max_words)
    seen: set[str] = set()
    kept: list[Sentence] = []
    for item in normalised:
        if item is None or item[2] in seen:
            continue
        seen.add(item[2])
        kept.append(Sentence(*item))
    return kept


def load_sentences(
    text_file: Path | None = None,
    fortunes_dir: Path = FORTUNES_DIR,
    min_words: int = 3,
    max_words: int = 30,
    jobs: int = 1,
) -> list[Sentence]:
    """Sentences of a text file (one per line) or, without one, the fortunes
    (``jobs``: see ``prepare_sentences``)."""
    if text_file is not None:
        lines = read_text_lines(text_file)
        sentences = prepare_sentences(lines, min_words, max_words, jobs)
        source = str(text_file)
    else:
        if not fortunes_dir.is_dir():
            raise FileNotFoundError(
                f"{fortunes_dir} not found: install the fortunes package or pass "
                "--text-file (see python -m recipes.data.sentences)"
            )
        sentences = prepare_sentences(
            fortune_sentences(fortunes_dir), min_words, max_words, jobs
        )
        source = str(fortunes_dir)
    logger.info("%d sentences from %s", len(sentences), source)
    return sentences


def shuffled(sentences: list[Sentence], seed: int) -> list[Sentence]:
    """A deterministic permutation (the same on every machine and Python)."""
    order = list(sentences)
    random.Random(seed).shuffle(order)
    return order


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.data.sentences",
        description="Write cleaned sentences (fortunes or WordNet), one per line.",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output text file (.gz: gzipped)"
    )
    parser.add_argument("--source", choices=["fortunes", "wordnet"], default="fortunes")
    parser.add_argument("--fortunes-dir", type=Path, default=FORTUNES_DIR)
    parser.add_argument("--wordnet-dir", type=Path, default=WORDNET_DIR)
    parser.add_argument("--min-words", type=int, default=3)
    parser.add_argument("--max-words", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("speech.text").setLevel(logging.ERROR)
    try:
        if args.source == "wordnet":
            sentences = prepare_sentences(
                wordnet_sentences(args.wordnet_dir), args.min_words, args.max_words
            )
        else:
            sentences = load_sentences(
                None, args.fortunes_dir, args.min_words, args.max_words
            )
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(s.raw + "\n" for s in sentences).encode("utf-8")
    if args.out.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_bytes(data)
    partial.replace(args.out)
    size = args.out.stat().st_size
    print(f"wrote {len(sentences)} sentences ({size / 1e6:.2f} MB) to {args.out}")


if __name__ == "__main__":
    main()
