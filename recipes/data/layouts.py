"""Folder layouts of a built corpus: where each WAV goes and the index files.

Every layout also gets JSONL manifests (``train.jsonl``, ``dev.jsonl``,
``test.jsonl`` and, with tuning voices, ``tune.jsonl``) in the output folder,
audio paths relative to it.

* ``flat`` - ``<split>/<split>-<index>.wav``.
* ``librispeech`` - ``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.wav``
  with ``<speaker>-<chapter>.trans.txt`` beside them (``<utterance id>
  <UPPER-CASE TRANSCRIPT>`` lines) and ``SPEAKERS.TXT`` mapping the numeric
  speaker ids to voices. Speaker ids are 1000 + the voice's rank among all
  voices of the build; the chapter is 1 (train), 2 (dev), 3 (test) or 4
  (tune).
* ``ljspeech`` - ``wavs/<id>.wav`` and ``metadata.csv`` (train) with
  ``id|text|normalized text`` lines, plus ``metadata_dev.csv`` and
  ``metadata_test.csv`` (and ``metadata_tune.csv``) for the other splits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from speech.text.normalize import asr_transcript

__all__ = ["CHAPTERS", "Layout", "PathPlanner", "write_index_files"]

Layout = Literal["flat", "librispeech", "ljspeech"]
CHAPTERS = {"train": 1, "dev": 2, "test": 3, "tune": 4}


class Entry(Protocol):
    """What an index file needs of a synthesised utterance."""

    @property
    def split(self) -> str: ...
    @property
    def voice(self) -> str: ...
    @property
    def raw(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def audio(self) -> str: ...


class PathPlanner:
    """Relative audio paths for one build, in planning order."""

    def __init__(self, layout: Layout, voices: Iterable[str]) -> None:
        self.layout = layout
        self.speaker_ids = {v: 1000 + i for i, v in enumerate(sorted(set(voices)))}
        self._counts: defaultdict[tuple[str, str], int] = defaultdict(int)

    def path(self, split: str, index: int, voice: str) -> str:
        if self.layout == "flat":
            return f"{split}/{split}-{index:06d}.wav"
        if self.layout == "ljspeech":
            return f"wavs/{split}-{index:06d}.wav"
        speaker = self.speaker_ids[voice]
        chapter = CHAPTERS[split]
        number = self._counts[split, voice]
        self._counts[split, voice] += 1
        return f"{split}/{speaker}/{chapter}/{speaker}-{chapter}-{number:04d}.wav"


def _librispeech(
    root: Path, entries: Sequence[Entry], speaker_ids: dict[str, int]
) -> None:
    transcripts: defaultdict[Path, list[str]] = defaultdict(list)
    splits_of: defaultdict[str, set[str]] = defaultdict(set)
    for entry in entries:
        audio = Path(entry.audio)
        speaker, chapter, _ = audio.stem.split("-")
        index = root / audio.parent / f"{speaker}-{chapter}.trans.txt"
        transcripts[index].append(f"{audio.stem} {asr_transcript(entry.text).upper()}")
        splits_of[entry.voice].add(entry.split)
    for index, lines in transcripts.items():
        index.write_text(
            "".join(f"{line}\n" for line in sorted(lines)), encoding="utf-8"
        )
    rows = [
        f"{speaker_ids[voice]} | {','.join(sorted(splits))} | {voice}"
        for voice, splits in sorted(
            splits_of.items(), key=lambda kv: speaker_ids[kv[0]]
        )
    ]
    header = ";ID | SPLITS | VOICE\n"
    (root / "SPEAKERS.TXT").write_text(header + "".join(f"{r}\n" for r in rows))


def _ljspeech(root: Path, entries: Sequence[Entry]) -> None:
    names = {
        "train": "metadata.csv",
        "dev": "metadata_dev.csv",
        "test": "metadata_test.csv",
        "tune": "metadata_tune.csv",
    }
    rows: defaultdict[str, list[str]] = defaultdict(list)
    for entry in entries:
        raw = " ".join(entry.raw.replace("|", " ").split())
        rows[entry.split].append(f"{Path(entry.audio).stem}|{raw}|{entry.text}")
    for split, lines in rows.items():
        (root / names[split]).write_text(
            "".join(f"{line}\n" for line in lines), encoding="utf-8"
        )


def write_index_files(
    root: Path, layout: Layout, entries: Sequence[Entry], speaker_ids: dict[str, int]
) -> None:
    """The layout's transcript / metadata files for the synthesised entries."""
    if layout == "librispeech":
        _librispeech(root, entries, speaker_ids)
    elif layout == "ljspeech":
        _ljspeech(root, entries)
