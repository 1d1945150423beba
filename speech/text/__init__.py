"""Text front end: normalisation, sentence splitting and phonemes.

``normalize_text`` turns written English into speakable words,
``asr_transcript`` gives the canonical form of ASR targets and WER scoring,
``split_sentences`` cuts text for synthesis, and ``text_to_ids`` maps text to
the synthesizer's fixed phoneme inventory through the bundled espeak-ng.
"""

from speech.text.normalize import (
    asr_transcript,
    dropped_characters,
    normalize_text,
    split_sentences,
)
from speech.text.phonemize import (
    PAD_ID,
    PHONEME_SYMBOLS,
    ids_to_symbols,
    phonemes_to_ids,
    text_to_ids,
    text_to_phonemes,
)

__all__ = [
    "PAD_ID",
    "PHONEME_SYMBOLS",
    "asr_transcript",
    "dropped_characters",
    "ids_to_symbols",
    "normalize_text",
    "phonemes_to_ids",
    "split_sentences",
    "text_to_ids",
    "text_to_phonemes",
]
