"""Accents the engines do not have, made from espeak-ng's phoneme input.

One so far: a **raised /æ/** (``raised-ae``). Many American speakers raise
and glide the vowel of "had", "man", "hand" towards [eə] or [ɪə], before
nasals above all (the "nasal system") or before every consonant. No voice
of the corpus does: each keeps /æ/ open, its F1 145-500 Hz above its /ɪ/,
while the held-out flite voice ``rms`` has the two at one F1 and reads
"and" as "in", "than" as "them" (``docs/asr_model_history.md``, "What is
left of `rms`").

An accent is written ``raised-ae:<vowel>:<system>``: ``vowel`` the espeak-ng
mnemonic that replaces /æ/ (``e@``, [eə]; ``I@``, [ɪə], higher still) and
``system`` where (``nasal``, before /n/ and /m/; ``all``). The text is read
into phonemes clause by clause (``speech.text.espeak.text_to_mnemonics``),
/æ/ is replaced, and the clauses are spoken from phoneme input with their
punctuation, so intonation and pauses stay those of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from speech.text import espeak

__all__ = [
    "RAISED_AE_SYSTEMS",
    "RAISED_AE_VOWELS",
    "Accent",
    "AccentError",
    "accent_text",
    "raise_ae",
]

RAISED_AE_VOWELS = ("e@", "I@")
RAISED_AE_SYSTEMS = ("nasal", "all")

# espeak-ng's English /æ/ is the mnemonic ``a`` on its own: not the start of
# aI, aU, aI@, aU@, aI2, aI3, a#, a2 or aa (nor the second a of aa)
_AE = re.compile(r"(?<!a)a(?![aIU#@23:])")


class AccentError(ValueError):
    """An accent spec that cannot be read, or a voice it cannot be spoken by."""


@dataclass(frozen=True)
class Accent:
    vowel: str
    system: str

    @classmethod
    def parse(cls, spec: str) -> Accent:
        kind, _, rest = spec.partition(":")
        vowel, _, system = rest.partition(":")
        if kind != "raised-ae":
            raise AccentError(
                f"unknown accent {spec!r} (known: raised-ae:VOWEL:SYSTEM)"
            )
        if vowel not in RAISED_AE_VOWELS:
            raise AccentError(
                f"accent {spec!r}: vowel must be one of {', '.join(RAISED_AE_VOWELS)}"
            )
        if system not in RAISED_AE_SYSTEMS:
            raise AccentError(
                f"accent {spec!r}: system must be one of {', '.join(RAISED_AE_SYSTEMS)}"
            )
        return cls(vowel, system)

    @property
    def spec(self) -> str:
        return f"raised-ae:{self.vowel}:{self.system}"


def raise_ae(phonemes: str, vowel: str, system: str) -> tuple[str, int]:
    """``phonemes`` (espeak-ng English mnemonics) with /æ/ replaced by
    ``vowel``: everywhere (``system="all"``) or only where /n/ or /m/ follows
    (``"nasal"``; not /ŋ/, which raises less). Returns the new string and how
    many vowels changed."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        following = phonemes[match.end() : match.end() + 1]
        if system == "nasal" and following not in ("n", "m"):
            return match.group(0)
        count += 1
        return vowel

    return _AE.sub(replace, phonemes), count


def accent_text(text: str, voice: str, accent: Accent) -> tuple[str, int]:
    """``text`` as espeak-ng phoneme input (``[[...]]`` per clause, each
    followed by its punctuation) in ``accent``, for ``voice`` (an espeak-ng
    voice name), and the number of vowels changed. Speak it with
    ``espeak.synthesize(..., phoneme_input=True)``."""
    parts = []
    changed = 0
    for phonemes, mark in espeak.text_to_mnemonics(text, voice):
        if not phonemes:
            continue
        phonemes, count = raise_ae(phonemes, accent.vowel, accent.system)
        changed += count
        parts.append(f"[[{phonemes}]]{mark}")
    return " ".join(parts), changed
