"""Recognition results and the files they are written to (txt, json, srt, vtt).

The result types are defined here once and shared by the decoders, the CLI
and the server. Times are in seconds from the start of the input.

Subtitle cues come from segments: a segment whose text fits ``max_lines`` lines
of ``max_line_width`` characters is one cue; a longer one is cut into several
cues at word boundaries, timed by its word timestamps when it has them and in
proportion to the characters otherwise.

This module imports the standard library only.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import IO, Any, NamedTuple

__all__ = [
    "Segment",
    "SubtitleCue",
    "Transcript",
    "Word",
    "atomic_output",
    "format_timestamp",
    "subtitle_cues",
    "to_json",
    "to_srt",
    "to_txt",
    "to_vtt",
    "write_text_atomic",
]

MAX_LINE_WIDTH = 42  # characters per subtitle line (common broadcast guideline)
MAX_LINES = 2  # lines per subtitle cue
_MIN_CUE_SECONDS = 0.001  # players drop cues whose end is not after their start


@dataclass(slots=True)
class Word:
    """A recognised word; ``confidence`` in [0, 1] where the decoder gives one."""

    text: str
    start: float
    end: float
    confidence: float | None = None


@dataclass(slots=True)
class Segment:
    """A stretch of speech: its text, its time span and (optionally) its words."""

    text: str
    start: float
    end: float
    words: list[Word] = field(default_factory=list)


@dataclass(slots=True)
class Transcript:
    """The recognition result of one input; ``duration`` is the input's length."""

    text: str
    segments: list[Segment]
    duration: float
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            Segment(
                text=s["text"],
                start=float(s["start"]),
                end=float(s["end"]),
                words=[Word(**w) for w in s.get("words", [])],
            )
            for s in data["segments"]
        ]
        return cls(
            text=data["text"],
            segments=segments,
            duration=float(data["duration"]),
            language=data.get("language", "en"),
        )


# --------------------------------------------------------------------- writers


def format_timestamp(seconds: float, decimal_marker: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal_marker="."``, WebVTT's form.

    Negative times are clamped to zero; hours grow past 99 when needed.

    Example:
        >>> format_timestamp(3725.0456)
        '01:02:05,046'
    """
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def to_txt(transcript: Transcript) -> str:
    """One segment per line (the whole text on one line when there are none)."""
    lines = [s.text.strip() for s in transcript.segments if s.text.strip()]
    if not lines and transcript.text.strip():
        lines = [transcript.text.strip()]
    return "".join(line + "\n" for line in lines)


def to_json(transcript: Transcript, indent: int | None = 2) -> str:
    """The transcript as JSON; times rounded to the millisecond."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 3)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    return json.dumps(rounded(transcript.to_dict()), indent=indent, ensure_ascii=False)


class SubtitleCue(NamedTuple):
    start: float
    end: float
    lines: list[str]


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(
        text, width, break_long_words=False, break_on_hyphens=False
    ) or [""]


def _cues_from_words(
    words: Sequence[Word], max_line_width: int, max_lines: int
) -> list[SubtitleCue]:
    cues: list[SubtitleCue] = []
    lines: list[str] = []
    first = last = 0  # indices of the cue's first and last word

    for index, word in enumerate(words):
        text = word.text.strip()
        if not text:
            continue
        if lines and len(lines[-1]) + 1 + len(text) <= max_line_width:
            lines[-1] += " " + text
        elif lines and len(lines) < max_lines:
            lines.append(text)
        else:
            if lines:
                cues.append(SubtitleCue(words[first].start, words[last].end, lines))
            lines, first = [text], index
        last = index
    if lines:
        cues.append(SubtitleCue(words[first].start, words[last].end, lines))
    return cues


def _cues_from_text(
    segment: Segment, max_line_width: int, max_lines: int
) -> list[SubtitleCue]:
    lines = _wrap(segment.text.strip(), max_line_width)
    groups = [lines[i : i + max_lines] for i in range(0, len(lines), max_lines)]
    total_chars = sum(len(line) for line in lines) or 1
    cues, start, chars = [], segment.start, 0
    for group in groups:
        chars += sum(len(line) for line in group)
        end = segment.start + (segment.end - segment.start) * chars / total_chars
        cues.append(SubtitleCue(start, end, group))
        start = end
    return cues


def subtitle_cues(
    segments: Sequence[Segment],
    max_line_width: int = MAX_LINE_WIDTH,
    max_lines: int = MAX_LINES,
) -> list[SubtitleCue]:
    """Cut segments into cues of at most ``max_lines`` lines of ``max_line_width``.

    A single word longer than the width keeps its own line rather than being
    broken. Every cue ends at least 1 ms after it starts.
    """
    cues: list[SubtitleCue] = []
    for segment in segments:
        if not segment.text.strip():
            continue
        if segment.words:
            new = _cues_from_words(segment.words, max_line_width, max_lines)
        else:
            new = _cues_from_text(segment, max_line_width, max_lines)
        cues.extend(new)
    return [
        SubtitleCue(c.start, max(c.end, c.start + _MIN_CUE_SECONDS), c.lines)
        for c in cues
    ]


def to_srt(
    transcript: Transcript,
    max_line_width: int = MAX_LINE_WIDTH,
    max_lines: int = MAX_LINES,
) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, blank lines between."""
    blocks = []
    cues = subtitle_cues(transcript.segments, max_line_width, max_lines)
    for number, cue in enumerate(cues, start=1):
        start, end = format_timestamp(cue.start), format_timestamp(cue.end)
        blocks.append(f"{number}\n{start} --> {end}\n" + "\n".join(cue.lines) + "\n")
    return "\n".join(blocks)


def to_vtt(
    transcript: Transcript,
    max_line_width: int = MAX_LINE_WIDTH,
    max_lines: int = MAX_LINES,
) -> str:
    """WebVTT: a ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    blocks = ["WEBVTT\n"]
    for cue in subtitle_cues(transcript.segments, max_line_width, max_lines):
        start = format_timestamp(cue.start, ".")
        end = format_timestamp(cue.end, ".")
        blocks.append(f"{start} --> {end}\n" + "\n".join(cue.lines) + "\n")
    return "\n".join(blocks)


# ------------------------------------------------------------- atomic writing


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``path``; on success fsync it and rename it.

    Readers of ``path`` see either the old file or the complete new one, never
    a partial write. On an exception the temporary file is removed and
    ``path`` is left untouched. A new file gets mode 0644; an existing file
    keeps its mode.
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see ``atomic_output``)."""
    with atomic_output(path) as file:
        file.write(text.encode("utf-8"))
