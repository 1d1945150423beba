"""Synthetic voices for the corpora: flite, Festival and the bundled espeak-ng.

A voice is written ``engine:name``:

* ``flite:slt``, ``flite:awb``, ``flite:rms``, ``flite:kal16`` - the ``flite``
  program (Debian package; on the GPU machine unpacked with ``dpkg -x``),
  16 kHz. ``flite:kal`` (8 kHz, upsampled it lacks the upper band) works but is
  in no default list.
* ``festival:ked_diphone``, ``festival:kal_diphone`` (diphone voices of two
  American men, 16 kHz) and ``festival:cmu_us_slt_arctic_hts`` (an HTS
  statistical voice, 32 kHz) - the ``festival`` program and its voice
  packages (``festvox-kdlpc16k``, ``festvox-kallpc16k``,
  ``festvox-us-slt-hts``), one long-lived ``festival --pipe`` per process
  (``FestivalProcess``). ``ked`` is a speaker no other engine has; the
  other two are known speakers through a different synthesiser.
* ``pico:en-US``, ``pico:en-GB`` - SVOX Pico's two English voices (women,
  16 kHz) through ``pico2wave`` (package ``libttspico-utils``, Debian
  non-free: Apache-2.0 code and voice data that comes without its sources).
  A third synthesiser type, and the most natural-sounding of the free ones.
* ``mbrola:us1``, ``mbrola:us2``, ``mbrola:us3``, ``mbrola:en1`` - MBROLA
  diphone voices (an American woman, two American men, a British man;
  16 kHz) driven by Festival's front end (its voices ``us1_mbrola`` etc.,
  packages ``mbrola``, ``mbrola-us1`` ..., ``festvox-us1`` ..., and
  ``festlex-oald`` for ``en1``; Debian contrib and non-free). A fourth
  synthesiser type built from recordings of people: more men's voices,
  whose timbres the model otherwise hears from few speakers. Opt-in: the
  databases may not be sold or built into a sold product without their
  owner's permission, so the shipped model is not trained on them.
* ``espeak:<language>[+<variant>]`` - libespeak-ng from the ``espeakng-loader``
  wheel through ctypes, 22.05 kHz: ``espeak:en-us+f3``, ``espeak:en+m1``
  (``en`` is British English), ``espeak:en-gb-scotland+klatt3``.

Held-out evaluation voices are whole voices never used in training. The
default held-out set is ``flite:rms`` and three espeak-ng voices built on
variants (m3, f4, m6) that no default training voice uses at all:
``espeak:en-gb-scotland+m3``, ``espeak:en-us+f4``, ``espeak:en-029+m6``.

Prosody: espeak-ng takes the rate in words per minute and a base pitch
0..100 directly; flite takes the rate as ``duration_stretch`` = 175 / rate
(its default pace is about 175 words per minute) and the pitch as a target
mean F0 (``int_f0_target_mean``): pitch 50 keeps the voice's own, 30..70 moves
it by a factor of about 0.79..1.26 (``2 ** ((pitch - 50) / 60)``) around the
voice's natural median (``FLITE_NATURAL_F0``), which gives the few flite
voices more speaker variety. Festival's diphone voices take the same pitch
mapping through their intonation targets (``int_lr_params``) and the rate as
``Duration_Stretch``; its HTS voice takes the rate as the engine's speed
factor and keeps its own pitch. Pico takes both as percentages in its
markup (``<speed level>``, ``<pitch level>``), mapped the same way.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np

from recipes.data.accent import Accent, AccentError, accent_text
from recipes.data.audio import read_wav
from speech.text import espeak

__all__ = [
    "DEFAULT_HELDOUT_VOICES",
    "ENGINES",
    "ESPEAK_LANGUAGES",
    "ESPEAK_TRAIN_VARIANTS",
    "FESTIVAL_TRAIN_VOICES",
    "FLITE_TRAIN_VOICES",
    "MBROLA_TRAIN_VOICES",
    "PICO_TRAIN_VOICES",
    "Voice",
    "VoiceError",
    "check_voice",
    "default_training_voices",
    "speak",
]

Engine = Literal["flite", "festival", "pico", "mbrola", "espeak"]
ENGINES: tuple[Engine, ...] = ("flite", "festival", "pico", "mbrola", "espeak")

FLITE_TRAIN_VOICES = ("kal16", "awb", "slt")
FESTIVAL_TRAIN_VOICES = ("ked_diphone", "kal_diphone", "cmu_us_slt_arctic_hts")
PICO_TRAIN_VOICES = ("en-US", "en-GB")
MBROLA_TRAIN_VOICES = ("us1", "us2", "us3", "en1")
ESPEAK_LANGUAGES = (
    "en-us",
    "en",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# Variants whose speech stays intelligible (no echo, whisper or robot effects;
# checked with pocketsphinx) and does not clip; m3, f4 and m6 are kept out
# for the held-out voices.
ESPEAK_TRAIN_VARIANTS = (
    "m1", "m2", "m4", "m5", "m7", "m8", "f1", "f2", "f3", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
    "edward", "benjamin", "michel", "miguel", "Diogo", "mike2", "adam",
    "Denis", "Gene", "Storm", "david", "linda", "belinda", "max",
)  # fmt: skip
DEFAULT_HELDOUT_VOICES = (
    "flite:rms",
    "espeak:en-gb-scotland+m3",
    "espeak:en-us+f4",
    "espeak:en-029+m6",
)

FLITE_NORMAL_RATE = 175  # words per minute at duration_stretch 1


class VoiceError(ValueError):
    """A voice spec that cannot be parsed or is not installed."""


_FESTIVAL_NAME = re.compile(r"[A-Za-z0-9_]+")  # the name goes into a Scheme call


@dataclass(frozen=True, order=True)
class Voice:
    engine: Engine
    name: str

    @classmethod
    def parse(cls, spec: str) -> Voice:
        engine, sep, name = spec.strip().partition(":")
        if not sep or not name:
            raise VoiceError(f"voice {spec!r}: expected ENGINE:NAME, e.g. flite:slt")
        if engine not in ENGINES:
            raise VoiceError(
                f"voice {spec!r}: engine must be one of {', '.join(ENGINES)}"
            )
        if engine in ("festival", "mbrola") and not _FESTIVAL_NAME.fullmatch(name):
            raise VoiceError(f"voice {spec!r}: not a Festival voice name")
        return cls(engine, name)  # type: ignore[arg-type]

    @property
    def spec(self) -> str:
        return f"{self.engine}:{self.name}"

    @property
    def variant(self) -> str:
        """The espeak-ng variant ("" for none or for flite)."""
        return self.name.partition("+")[2] if self.engine == "espeak" else ""

    def __str__(self) -> str:
        return self.spec


def default_training_voices(heldout: list[Voice]) -> list[Voice]:
    """The default training grid minus held-out voices and their variants.

    3 flite voices, 3 Festival voices, 2 Pico voices and 4 MBROLA voices
    (``build_corpus`` keeps these two groups only with ``--pico-fraction``
    or ``--mbrola-fraction`` above 0) and 8 English accents x 30
    espeak-ng variants; any variant of a held-out espeak voice is dropped
    from every accent, so a held-out timbre is never heard in training.
    """
    held_variants = {v.variant for v in heldout if v.variant}
    voices = [Voice("flite", name) for name in FLITE_TRAIN_VOICES]
    voices += [Voice("festival", name) for name in FESTIVAL_TRAIN_VOICES]
    voices += [Voice("pico", name) for name in PICO_TRAIN_VOICES]
    voices += [Voice("mbrola", name) for name in MBROLA_TRAIN_VOICES]
    voices += [
        Voice("espeak", f"{language}+{variant}")
        for language in ESPEAK_LANGUAGES
        for variant in ESPEAK_TRAIN_VARIANTS
        if variant not in held_variants
    ]
    return [v for v in voices if v not in heldout]


def _program(name: str, install: str) -> str:
    """The path of program ``name``, or ``VoiceError`` saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise VoiceError(f"the {name} program is not on PATH ({install})")
    return path


@functools.cache
def _flite_voices() -> frozenset[str]:
    _program("flite", "apt-get install flite")
    listing = subprocess.run(
        ["flite", "-lv"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(listing.partition(":")[2].split())


@functools.cache
def _festival_program() -> str:
    return _program(
        "festival",
        "apt-get install festival festvox-kdlpc16k festvox-kallpc16k "
        "festvox-us-slt-hts",
    )


@functools.cache
def _festival_voices() -> frozenset[str]:
    # asked the way the corpus workers talk to Festival (``--pipe``, see
    # ``FestivalProcess``), so that a check that passes means they can run
    result = subprocess.run(
        [_festival_program(), "--pipe"],
        input="(print (voice.list))\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1:] or ["no message"]
        raise VoiceError(f"festival does not run: {message[0]}")
    return frozenset(result.stdout.strip().strip("()").split())


PICO_LANG_DIR = Path("/usr/share/pico/lang")  # where pico2wave looks


@functools.cache
def _pico_voices() -> frozenset[str]:
    _program(
        "pico2wave", "apt-get install libttspico-utils, from Debian's non-free section"
    )
    # pico2wave reads its voice data from a fixed folder, one pair of files
    # (text analysis, signal generation) per language
    if not PICO_LANG_DIR.is_dir():
        return frozenset()
    names = {path.name.partition("_")[0] for path in PICO_LANG_DIR.glob("*_ta.bin")}
    return frozenset(n for n in names if any(PICO_LANG_DIR.glob(f"{n}_*_sg.bin")))


MBROLA_SUFFIX = "_mbrola"  # Festival's name for the voice built on a database


@functools.cache
def _mbrola_voices() -> frozenset[str]:
    # Festival runs the ``mbrola`` program (on PATH) for each utterance
    _program(
        "mbrola",
        "apt-get install mbrola mbrola-us1 festvox-us1 ..., from Debian's "
        "contrib and non-free",
    )
    return frozenset(
        name.removesuffix(MBROLA_SUFFIX)
        for name in _festival_voices()
        if name.endswith(MBROLA_SUFFIX)
    )


def check_voice(voice: Voice) -> None:
    """Raise ``VoiceError`` unless the voice can be synthesised here."""
    if voice.engine == "espeak":
        if not espeak.has_voice(voice.name):
            raise VoiceError(f"{voice}: espeak-ng has no voice {voice.name!r}")
        return
    listing = {
        "flite": _flite_voices,
        "festival": _festival_voices,
        "pico": _pico_voices,
        "mbrola": _mbrola_voices,
    }[voice.engine]
    try:
        available = listing()
    except VoiceError as error:
        raise VoiceError(f"{voice}: {error}") from None
    if voice.name not in available:
        names = " ".join(sorted(available)) or "none installed"
        raise VoiceError(
            f"{voice}: {voice.engine} has no voice {voice.name!r} ({names})"
        )


# Median F0 (Hz) of each flite voice at its own settings, measured with pYIN.
FLITE_NATURAL_F0 = {
    "slt": 170.0,
    "awb": 130.0,
    "kal16": 100.0,
    "kal": 100.0,
    "rms": 100.0,
}
FLITE_NEUTRAL_PITCH = 50


def pitch_factor(pitch: int) -> float:
    """F0 factor of a drawn ``pitch`` for flite and Festival voices (50 -> 1)."""
    return 2.0 ** ((pitch - FLITE_NEUTRAL_PITCH) / 60.0)


def flite_f0(name: str, pitch: int) -> float | None:
    """Target mean F0 for flite ``name`` at ``pitch`` (None keeps the voice's)."""
    natural = FLITE_NATURAL_F0.get(name)
    if natural is None or pitch == FLITE_NEUTRAL_PITCH:
        return None
    return natural * pitch_factor(pitch)


def _synthesize_to_file(
    engine: str, command: Callable[[str], list[str]]
) -> tuple[np.ndarray, int]:
    """Run ``command(wav_path)`` and read the WAV it wrote; a failure or an
    empty file raises ``RuntimeError``."""
    handle, path = tempfile.mkstemp(suffix=".wav", prefix=f"{engine}-")
    os.close(handle)
    try:
        result = subprocess.run(command(path), capture_output=True, timeout=120)
        if result.returncode != 0 or Path(path).stat().st_size <= 44:
            message = result.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{engine} failed ({result.returncode}): {message}")
        return read_wav(path)
    finally:
        Path(path).unlink(missing_ok=True)


def _flite(text: str, name: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    stretch = FLITE_NORMAL_RATE / rate
    command = ["flite", "-voice", name, "--setf", f"duration_stretch={stretch:.3f}"]
    f0 = flite_f0(name, pitch)
    if f0 is not None:
        command += ["--setf", f"int_f0_target_mean={f0:.1f}"]
    return _synthesize_to_file("flite", lambda path: [*command, "-t", text, "-o", path])


_PICO_MARKUP = re.compile(r"[<>&]")


def pico_markup(text: str, rate: int, pitch: int) -> str:
    """``text`` wrapped in Pico's speed and pitch markup (percent levels).

    Pico reads ``<...>`` as markup, so the three markup characters become
    spaces (normalised corpus text has none of them anyway)."""
    speed = round(100 * rate / FLITE_NORMAL_RATE)
    level = round(100 * pitch_factor(pitch))
    plain = _PICO_MARKUP.sub(" ", text)
    return f'<speed level="{speed}"><pitch level="{level}">{plain}</pitch></speed>'


def _pico(text: str, name: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    markup = pico_markup(text, rate, pitch)
    return _synthesize_to_file(
        "pico", lambda path: ["pico2wave", "-l", name, "-w", path, markup]
    )


# Intonation targets (mean, standard deviation, Hz) of Festival's diphone
# voices at their own settings; the HTS voice has no such targets.
FESTIVAL_F0_TARGETS = {
    "ked_diphone": (105.0, 15.0),
    "kal_diphone": (105.0, 14.0),
    "us1_mbrola": (160.0, 34.0),
    "us2_mbrola": (90.0, 15.0),
    "us3_mbrola": (105.0, 16.0),
    "en1_mbrola": (110.0, 15.0),
}


def festival_settings(name: str, rate: int, pitch: int) -> list[str]:
    """Scheme expressions that select Festival voice ``name`` at a prosody."""
    expressions = [f"(voice_{name})"]
    if name.endswith("_hts"):
        speed = rate / FLITE_NORMAL_RATE
        expressions.append(
            "(set! hts_engine_params (append hts_engine_params "
            f'(list (list "-r" {speed:.3f}))))'
        )
        return expressions
    expressions.append(
        f"(Parameter.set 'Duration_Stretch {FLITE_NORMAL_RATE / rate:.3f})"
    )
    targets = FESTIVAL_F0_TARGETS.get(name)
    if targets is not None and pitch != FLITE_NEUTRAL_PITCH:
        factor = pitch_factor(pitch)
        mean, spread = targets[0] * factor, targets[1] * factor
        expressions.append(
            f"(set! int_lr_params '((target_f0_mean {mean:.1f}) "
            f"(target_f0_std {spread:.1f}) (model_f0_mean 170) (model_f0_std 34)))"
        )
    return expressions


def scheme_string(text: str) -> str:
    """``text`` as a Scheme string literal (backslashes and quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_synthesis(text: str, path: str) -> str:
    # the text goes in as an escaped string literal, never as code
    return (
        f"(utt.save.wave (utt.synth (Utterance Text {scheme_string(text)})) "
        f"{scheme_string(path)} 'riff)"
    )


class FestivalProcess:
    """A long-lived ``festival --pipe`` that reads one utterance after another.

    Starting Festival and loading a voice costs about 0.14 s, most of a short
    utterance's time; one process per corpus worker pays it once (41 instead
    of 186 ms per corpus utterance on the dev machine), and its WAVs are
    bit-identical to a ``festival -b`` run's: each utterance selects its
    voice afresh, which resets the voice's parameters. Pipe mode prints
    nothing, so each utterance's WAV is written under a temporary name and
    renamed by Festival itself when complete; the caller waits for the name.
    A crash or a hung utterance (``timeout`` seconds) raises ``RuntimeError``
    and the next call starts a new process.
    """

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def speak(
        self, text: str, name: str, rate: int, pitch: int
    ) -> tuple[np.ndarray, int]:
        proc = self._start()
        assert proc.stdin is not None
        folder = Path(tempfile.mkdtemp(prefix="festival-"))
        part, done = folder / "speech.part", folder / "speech.wav"
        failed = folder / "failed"
        rename = f"mv {shlex.quote(str(part))} {shlex.quote(str(done))}"
        # one form: an error anywhere (a voice that does not exist) skips the
        # rest of it and marks the utterance failed instead
        command = (
            "(unwind-protect (begin "
            + " ".join(festival_settings(name, rate, pitch))
            + f" {_festival_synthesis(text, str(part))}"
            + f" (system {scheme_string(rename)})) "
            + f"(system {scheme_string('touch ' + shlex.quote(str(failed)))}))"
        )
        try:
            proc.stdin.write(command.encode() + b"\n")
            proc.stdin.flush()
            deadline = time.monotonic() + self.timeout
            while not done.exists():
                if failed.exists():
                    raise RuntimeError(f"festival failed: {self._last_error()}")
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"festival failed: {self._failure()}")
                time.sleep(0.002)
            samples, rate_hz = read_wav(done)
            if len(samples) == 0:
                raise RuntimeError("festival wrote an empty WAV")
            return samples, rate_hz
        except (OSError, ValueError) as error:
            raise RuntimeError(f"festival failed: {error}; {self._failure()}") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.close()
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [_festival_program(), "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        return self._proc

    def _last_error(self) -> str:
        """The last line Festival wrote to stderr (its error message)."""
        if self._log is None:
            return "no output"
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def _failure(self) -> str:
        """Stop the process; the end of what it wrote to stderr."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        status = proc.returncode if proc is not None else "?"
        message = f"exit status {status}: {self._last_error()}"
        self.close()
        return message


_festival_process: tuple[int, FestivalProcess] | None = None


def _festival_persistent(
    text: str, name: str, rate: int, pitch: int
) -> tuple[np.ndarray, int]:
    """``FestivalProcess.speak`` with one process per OS process (a forked
    worker never writes to its parent's pipe)."""
    global _festival_process
    if _festival_process is None or _festival_process[0] != os.getpid():
        process = FestivalProcess()
        atexit.register(process.close)
        _festival_process = (os.getpid(), process)
    return _festival_process[1].speak(text, name, rate, pitch)


def speak(
    voice: Voice, text: str, rate: int, pitch: int, accent: str = ""
) -> tuple[np.ndarray, int]:
    """Float32 mono samples of ``text`` and their sample rate.

    ``rate`` is in words per minute, ``pitch`` 0..100 (50 is a flite,
    Festival diphone, MBROLA or Pico voice's own pitch). ``accent`` (an
    espeak-ng voice only) is a ``recipes.data.accent`` spec such as
    ``raised-ae:e@:nasal``.
    """
    if accent:
        parsed = Accent.parse(accent)
        if voice.engine != "espeak":
            raise AccentError(
                f"accent {accent!r} needs an espeak-ng voice, not {voice.spec}"
            )
        text, _ = accent_text(text, voice.name, parsed)  # phoneme input
    if voice.engine == "flite":
        return _flite(text, voice.name, rate, pitch)
    if voice.engine == "festival":
        return _festival_persistent(text, voice.name, rate, pitch)
    if voice.engine == "pico":
        return _pico(text, voice.name, rate, pitch)
    if voice.engine == "mbrola":
        return _festival_persistent(text, voice.name + MBROLA_SUFFIX, rate, pitch)
    samples, sample_rate = espeak.synthesize(
        text, voice.name, rate=rate, pitch=pitch, phoneme_input=bool(accent)
    )
    return samples.astype(np.float32) / 32768.0, sample_rate
