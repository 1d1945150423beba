"""ctypes binding to the libespeak-ng bundled in the ``espeakng-loader`` wheel.

Only the wheel's library and data are used (never a system espeak-ng), so the
same code runs wherever the wheel is installed, with no audio system. The
library keeps one global state (current voice, rate, pitch), so every call
takes one module lock; initialisation is lazy (first use) and happens once per
process. After ``fork`` a child re-creates the lock and keeps the inherited,
already initialised library.

Services:

* ``text_to_ipa`` - grapheme to phoneme, IPA characters with stress marks;
  clause punctuation is not kept (callers split clauses themselves).
* ``text_to_mnemonics`` - espeak-ng's own phoneme names, clause by clause,
  each with the punctuation that ended it: what ``synthesize`` takes back as
  phoneme input (``[[...]]``).
* ``synthesize`` - int16 mono samples at ``sample_rate()`` (22.05 kHz).

Voice names are espeak-ng's voice file names: a language (``en-us``, ``en``
for British English, ``en-gb-scotland``) with an optional variant
(``en-us+f3``, ``en-029+klatt2``); an unknown name or variant raises
``EspeakError``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from pathlib import Path

import numpy as np

__all__ = [
    "EspeakError",
    "english_languages",
    "has_voice",
    "library_paths",
    "sample_rate",
    "synthesize",
    "text_to_ipa",
    "text_to_mnemonics",
    "variants",
]

logger = logging.getLogger(__name__)

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02
_PHONEMES_MNEMONIC = 0x00
_ALLOW_PHONEME_INPUT = 0x100  # espeakPHONEMES: [[...]] in the text is phonemes
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    """The bundled espeak-ng could not be loaded, or refused a request."""


def library_paths() -> tuple[Path, Path]:
    """The wheel's ``libespeak-ng`` file and its ``espeak-ng-data`` folder."""
    try:
        import espeakng_loader
    except ImportError as error:  # pragma: no cover - dependency missing
        raise EspeakError(
            "the espeakng-loader wheel is required (pip install espeakng-loader)"
        ) from error
    return Path(espeakng_loader.get_library_path()), Path(
        espeakng_loader.get_data_path()
    )


class _Engine:
    """The loaded library; only touched with ``_lock`` held."""

    def __init__(self) -> None:
        library, data = library_paths()
        try:
            lib = ctypes.CDLL(str(library))
        except OSError as error:
            raise EspeakError(f"cannot load {library}: {error}") from error
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data at {data}")
        self.lib = lib
        self.sample_rate = rate
        self.voice = ""
        self.chunks: list[np.ndarray] = []
        self.callback = _SYNTH_CALLBACK(self._collect)  # keep a reference
        lib.espeak_SetSynthCallback(self.callback)
        logger.debug("espeak-ng loaded from %s (data %s), %d Hz", library, data, rate)

    def _collect(self, samples, count, events) -> int:  # noqa: ANN001
        if count > 0 and samples:
            self.chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def set_voice(self, voice: str) -> None:
        if voice == self.voice:
            return
        # espeak-ng silently ignores an unknown "+variant"; refuse it instead.
        _, _, variant = voice.partition("+")
        if variant and variant not in variants():
            raise EspeakError(f"espeak-ng has no voice variant {variant!r}")
        status = self.lib.espeak_SetVoiceByName(voice.encode())
        if status != _EE_OK:
            self.voice = ""  # the library may have kept the previous voice
            raise EspeakError(f"espeak-ng has no voice {voice!r} (status {status})")
        self.voice = voice


_lock = threading.Lock()
_engine: _Engine | None = None


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    """Output sample rate of ``synthesize`` (22050 for espeak-ng 1.52)."""
    with _lock:
        return _get_engine().sample_rate


_CLAUSE_ENDS = ",.;:!?"


def _phoneme_clauses(text: str, voice: str, mode: int) -> list[tuple[str, str]]:
    """(phonemes, the punctuation that ended it) of each clause, as espeak-ng
    splits them. espeak-ng moves the text pointer past the clause and a few
    characters of the next one (it reads ahead to find the clause's end), so
    the punctuation is the last clause-ending mark in what it moved over."""
    if not text.strip():
        return []
    raw = text.encode("utf-8")
    buffer = ctypes.create_string_buffer(raw)
    base = ctypes.addressof(buffer)
    pointer = ctypes.c_void_p(base)
    clauses: list[tuple[str, str]] = []
    with _lock:
        engine = _get_engine()
        engine.set_voice(voice)
        while pointer.value:
            start = pointer.value - base
            result = engine.lib.espeak_TextToPhonemes(
                ctypes.byref(pointer), _CHARS_UTF8, mode
            )
            end = pointer.value - base if pointer.value else len(raw)
            source = raw[start:end].decode("utf-8", errors="replace")
            marks = [c for c in source if c in _CLAUSE_ENDS]
            phonemes = result.decode("utf-8", errors="replace") if result else ""
            clauses.append((phonemes.strip(), marks[-1] if marks else ""))
    return clauses


def text_to_ipa(text: str, voice: str = "en-us") -> str:
    """IPA phonemes of ``text``; words separated by spaces, clauses by a space.

    Stress marks (ˈ ˌ) and length (ː) are kept as espeak-ng writes them;
    punctuation is not represented.
    """
    clauses = _phoneme_clauses(text, voice, _PHONEMES_IPA)
    return " ".join(phonemes for phonemes, _ in clauses if phonemes)


def text_to_mnemonics(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """espeak-ng's phoneme mnemonics of each clause of ``text`` with the
    punctuation mark that ended it (``""`` if none): ``[("D@ k'at s'at",
    ","), ("p'am r'an", ".")]`` for "The cat sat, Pam ran.". Words are
    separated by spaces except where espeak-ng joins them (``O2nD@2``, "on
    the"); ``_:`` marks a pause. ``synthesize("[[D@ k'at s'at]], [[p'am
    r'an]].", phoneme_input=True)`` speaks them with the clauses'
    intonation."""
    return _phoneme_clauses(text, voice, _PHONEMES_MNEMONIC)


def synthesize(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    phoneme_input: bool = False,
) -> tuple[np.ndarray, int]:
    """Speak ``text``; returns ``(samples, sample_rate)``, samples int16 (T,).

    Args:
        voice: espeak-ng voice name with optional ``+variant``.
        rate: words per minute (80..450).
        pitch: base pitch 0..100 (50 is the voice's own).
        pitch_range: intonation range 0..100 (0 is monotone).
        volume: amplitude 0..200; some variants clip at the default 100.
        phoneme_input: read ``[[...]]`` in ``text`` as phoneme mnemonics
            (``text_to_mnemonics``); off, the brackets are read as text.
    """
    data = text.encode("utf-8") + b"\0"
    with _lock:
        engine = _get_engine()
        engine.set_voice(voice)
        settings = (
            (_RATE, rate),
            (_PITCH, pitch),
            (_RANGE, pitch_range),
            (_VOLUME, volume),
        )
        for parameter, value in settings:
            engine.lib.espeak_SetParameter(parameter, int(value), 0)
        engine.chunks = []
        flags = _CHARS_UTF8 | (_ALLOW_PHONEME_INPUT if phoneme_input else 0)
        status = engine.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, flags, None, None
        )
        chunks, engine.chunks = engine.chunks, []
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with status {status}")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return samples.astype(np.int16, copy=False), engine.sample_rate


def english_languages() -> list[str]:
    """English voice names in the bundled data (``en`` is British English)."""
    _, data = library_paths()
    names = [p.name.lower() for p in (data / "lang" / "gmw").glob("en*")]
    return sorted(names)


@functools.cache
def variants() -> tuple[str, ...]:
    """Voice variant names in the bundled data (``m1``, ``f3``, ``klatt2``...)."""
    _, data = library_paths()
    return tuple(sorted(p.name for p in (data / "voices" / "!v").iterdir()))


@functools.cache
def _voice_files() -> frozenset[str]:
    _, data = library_paths()
    return frozenset(p.name.lower() for p in (data / "lang").rglob("*") if p.is_file())


def has_voice(voice: str) -> bool:
    """Whether the bundled data has this voice (and variant), without loading.

    Checks the file names espeak-ng looks up (``lang/**/<name>``, case
    insensitive, and ``voices/!v/<variant>``).
    """
    name, _, variant = voice.partition("+")
    if variant and variant not in variants():
        return False
    return name.lower() in _voice_files()
