"""Exceptions raised by the toolkit.

Every message is one line that names the input and the problem, so a CLI can
print ``str(error)`` as is, e.g. ``bad.wav: not an audio file (Format not
recognised)``.
"""

from __future__ import annotations

__all__ = ["AudioError", "SpeechError"]


class SpeechError(Exception):
    """Base class of the errors this toolkit raises on purpose."""


class AudioError(SpeechError):
    """An audio input is missing, empty, not audio, truncated or corrupt."""


class GeometryError(SpeechError, ValueError):
    """A chunk geometry that a decoding path cannot run (for instance a
    full-context chunk on the long-form path, whose memory would grow with
    the square of the recording)."""
