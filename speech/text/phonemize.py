"""Text to phoneme ids for the synthesizer: a fixed inventory and espeak-ng G2P.

Tokens are single characters, chosen so that any phoneme string round-trips:

* id 0 is padding (``"_"``, never produced from text),
* ``" "`` is the word boundary,
* ``. , ? ! ; : -`` are pause tokens kept from the normalised text (``-`` is a
  dash between words, never a hyphen inside one),
* then IPA characters one by one: a diphthong such as ``oʊ`` is two tokens and
  stress (``ˈ ˌ``) and length (``ː``) marks are tokens of their own.

The inventory covers what espeak-ng 1.52 writes for its English voices plus
common IPA letters, and its order is frozen: models store ids, so new symbols
may only be appended.

Phonemes can be given directly, either with ``phonemes_to_ids`` or inline in
``text_to_ids`` between braces, the convention of Tacotron's ARPAbet input:
``"Say {təmˈɑːtoʊ}, not tomato."``. Inside braces each character is a token and
a space is a word boundary (``"{həlˈoʊ wˈɜːld}"``).

Grapheme to phoneme uses the ``en-us`` voice of the bundled espeak-ng; each
clause between punctuation marks is phonemized as a whole so stress follows
context, and the mark is appended as a pause token.

    >>> text_to_phonemes("Hello world.")
    'həlˈoʊ wˈɜːld.'
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable

from speech.text.espeak import text_to_ipa
from speech.text.normalize import normalize_text

__all__ = [
    "G2P_VOICE",
    "PAD",
    "PAD_ID",
    "PHONEME_SYMBOLS",
    "PUNCTUATION",
    "WORD_BOUNDARY",
    "ids_to_symbols",
    "phonemes_to_ids",
    "text_to_ids",
    "text_to_phonemes",
]

logger = logging.getLogger(__name__)

G2P_VOICE = "en-us"
PAD = "_"
PAD_ID = 0
WORD_BOUNDARY = " "
PUNCTUATION = (".", ",", "?", "!", ";", ":", "-")

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# IPA letters (espeak-ng English output first, then common extras).
_IPA = "æðŋɐɑɒɔəɚɛɜɡɪɬɹɾʃʊʌʍʒʔʉθᵻçøœɕɝɞɟɣɤɨɫɭɯɲɳɵɸɺɻɽʀʁʂʈʋʎʏʐʑʕʝβχ"
_MODIFIERS = "ˈˌːˑʲʰʷ"
_COMBINING = "\u0303\u0329\u032a\u0361"  # nasal, syllabic, dental, tie

PHONEME_SYMBOLS: tuple[str, ...] = (
    PAD,
    WORD_BOUNDARY,
    *PUNCTUATION,
    *_LETTERS,
    *_IPA,
    *_MODIFIERS,
    *_COMBINING,
)
_SYMBOL_TO_ID = {symbol: i for i, symbol in enumerate(PHONEME_SYMBOLS)}

_BRACES = re.compile(r"\{([^{}]*)\}")
_LEADING_MARK = re.compile(r"\s*([,.?!;:])")
_CLAUSE_MARK = re.compile(r"\s*([,.?!;:]|(?<=\s)-(?=\s))\s*")


@functools.lru_cache(maxsize=65536)
def _clause_phonemes(clause: str) -> str:
    return " ".join(text_to_ipa(clause, G2P_VOICE).split())


def _words_to_phonemes(text: str) -> str:
    """Normalise, then phonemize clause by clause, keeping the marks."""
    parts = _CLAUSE_MARK.split(normalize_text(text))
    pieces: list[str] = []
    for i in range(0, len(parts), 2):
        clause = parts[i].strip()
        mark = parts[i + 1] if i + 1 < len(parts) else ""
        phonemes = _clause_phonemes(clause) if clause else ""
        if phonemes or mark:
            pieces.append(phonemes + mark)
    return " ".join(p for p in pieces if p)


def text_to_phonemes(text: str) -> str:
    """Phoneme string of ``text``: IPA words, spaces, pause marks.

    Text between braces is taken as phonemes as it is (spaces collapsed).
    """
    pieces: list[str] = []
    position = 0
    for match in _BRACES.finditer(text):
        pieces.append(_words_to_phonemes(text[position : match.start()]))
        pieces.append(" ".join(match.group(1).split()))
        position = match.end()
        # A mark right after "}" belongs to the phonemes before it.
        mark = _LEADING_MARK.match(text, position)
        if mark and pieces[-1]:
            pieces[-1] += mark.group(1)
            position = mark.end()
    pieces.append(_words_to_phonemes(text[position:]))
    return " ".join(p for p in pieces if p)


def phonemes_to_ids(phonemes: str) -> list[int]:
    """Ids of a phoneme string, one per character; unknown ones are dropped.

    Runs of whitespace become one word boundary. The padding symbol is never
    produced from input.
    """
    ids: list[int] = []
    unknown: dict[str, None] = {}
    for char in " ".join(phonemes.split()):
        symbol_id = _SYMBOL_TO_ID.get(char, PAD_ID)
        if symbol_id == PAD_ID:
            unknown.setdefault(char)
            continue
        ids.append(symbol_id)
    if unknown:
        logger.warning(
            "dropped %d unknown phoneme symbol(s): %s",
            len(unknown),
            " ".join(f"{c!r}(U+{ord(c):04X})" for c in unknown),
        )
    return ids


def text_to_ids(text: str) -> list[int]:
    """Phoneme ids of English text (``{...}`` spans are phonemes as given)."""
    return phonemes_to_ids(text_to_phonemes(text))


def ids_to_symbols(ids: Iterable[int]) -> list[str]:
    """Symbols of ids; ``"".join(ids_to_symbols(ids))`` gives the phoneme string.

    Raises ``IndexError`` for an id outside the inventory.
    """
    return [PHONEME_SYMBOLS[i] for i in ids]
