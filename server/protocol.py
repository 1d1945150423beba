"""The WebSocket protocol's messages: parsing and checking what clients send,
and the error table (error code -> WebSocket close code and HTTP status).

``server/PROTOCOL.md`` documents the same messages with examples; a test
checks that every error code here is documented there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from speech.asr.frontend import VTLN_RANGE
from speech.asr.recognizer import MAX_ENSEMBLE, parse_vtln

__all__ = [
    "ERRORS",
    "AsrOptions",
    "AsrStart",
    "ProtocolError",
    "TtsRequest",
    "error_message",
    "parse_asr_start",
    "parse_json",
    "parse_tts_request",
]

SampleFormat = Literal["s16le", "f32le"]
SAMPLE_FORMATS: tuple[str, ...] = ("s16le", "f32le")
BYTES_PER_SAMPLE = {"s16le": 2, "f32le": 4}
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
MAX_BEAM_SIZE = 16
MAX_ID_CHARS = 128

# code -> (WebSocket close code, HTTP status, what it means)
ERRORS: dict[str, tuple[int, int, str]] = {
    "bad_json": (1007, 400, "a text message is not valid JSON"),
    "bad_message": (1007, 400, "a message is not a JSON object with a 'type'"),
    "unknown_type": (1002, 400, "the message type is not one this endpoint knows"),
    "not_started": (1002, 400, "audio or 'end' before the 'start' message"),
    "already_started": (1002, 400, "a second 'start' on one ASR connection"),
    "unexpected_binary": (1003, 400, "a binary message where none is expected"),
    "bad_sample_rate": (
        1003,
        400,
        "sample_rate missing, not an integer or out of range",
    ),
    "bad_format": (1003, 400, "sample format other than s16le or f32le"),
    "bad_option": (1003, 400, "an unknown option or an option value out of range"),
    "bad_frame": (1007, 400, "an audio frame that is not a whole number of samples"),
    "bad_text": (1007, 400, "text missing, not a string or with nothing to speak"),
    "unknown_voice": (1003, 400, "the requested voice is not served"),
    "frame_too_large": (1009, 413, "a message larger than the frame limit"),
    "text_too_long": (1009, 413, "text longer than the request limit"),
    "too_many_requests": (1008, 429, "too many queued synthesis requests"),
    "unauthorized": (1008, 401, "missing or wrong bearer token"),
    "origin_not_allowed": (1008, 403, "the browser Origin is not allowed"),
    "idle_timeout": (1008, 408, "no message from the client for too long"),
    "session_too_long": (1008, 408, "the session reached its maximum length"),
    "slow_consumer": (1008, 408, "the client does not read what the server sends"),
    "server_busy": (1013, 503, "the maximum number of concurrent sessions is reached"),
    "server_shutdown": (1001, 503, "the server is shutting down"),
    "not_served": (1003, 404, "this server does not run that model"),
    "bad_request": (1007, 400, "an HTTP request with a missing or malformed field"),
    "bad_audio": (1003, 400, "an uploaded file that is not readable audio"),
    "file_too_large": (1009, 413, "an upload larger than the upload limit"),
    "internal_error": (1011, 500, "an unexpected failure in the server"),
}


class ProtocolError(Exception):
    """A refusal: a JSON error for the client, then a close (or HTTP status)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def close_code(self) -> int:
        return ERRORS[self.code][0]

    @property
    def http_status(self) -> int:
        return ERRORS[self.code][1]

    def to_message(self) -> dict[str, Any]:
        return error_message(self.code, self.message)


def error_message(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def parse_json(text: str) -> dict[str, Any]:
    """A client text message -> a dict with a string ``type``."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ProtocolError("bad_json", f"invalid JSON: {error}") from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ProtocolError(
            "bad_message", "a message must be a JSON object with a string 'type'"
        )
    return value


def _number(
    message: dict[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    code: str = "bad_option",
) -> float:
    value = message.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(code, f"'{key}' must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ProtocolError(code, f"'{key}' must be in [{low}, {high}], got {value}")
    return float(value)


def _sample_format(message: dict[str, Any], key: str) -> SampleFormat:
    value = message.get(key, "s16le")
    if value not in SAMPLE_FORMATS:
        raise ProtocolError(
            "bad_format", f"'{key}' must be 's16le' or 'f32le', got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def _check_keys(message: dict[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(message) - known)
    if unknown:
        raise ProtocolError("bad_option", f"unknown {what} field(s): {unknown}")


@dataclass(frozen=True)
class AsrOptions:
    beam_size: int | None = None  # None: the server's default
    endpointing: bool = True  # close segments at pauses (finals as you go)
    trailing_silence: float | None = None  # seconds of pause that ends a segment
    partials: bool = True  # send partial results
    # VTLN warp factor, or a warp ensemble's factors; None: the recognizer's
    vtln: float | tuple[float, ...] | None = None
    # endpoint rescoring of finals; None: the server's (with endpointing)
    rescore: bool | None = None


@dataclass(frozen=True)
class AsrStart:
    sample_rate: int
    format: SampleFormat
    options: AsrOptions

    @property
    def bytes_per_sample(self) -> int:
        return BYTES_PER_SAMPLE[self.format]


def parse_asr_start(message: dict[str, Any]) -> AsrStart:
    """Check an ASR ``start`` message."""
    _check_keys(message, {"type", "sample_rate", "format", "options"}, "start")
    rate = message.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise ProtocolError(
            "bad_sample_rate", f"'sample_rate' must be an integer, got {rate!r}"
        )
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(
            "bad_sample_rate",
            f"'sample_rate' must be in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}], "
            f"got {rate}",
        )
    fmt = _sample_format(message, "format")
    raw = message.get("options") or {}
    if not isinstance(raw, dict):
        raise ProtocolError("bad_option", "'options' must be an object")
    _check_keys(
        raw,
        {"beam_size", "endpointing", "trailing_silence", "partials", "vtln", "rescore"},
        "options",
    )
    beam = raw.get("beam_size")
    if beam is not None and (
        isinstance(beam, bool)
        or not isinstance(beam, int)
        or not 1 <= beam <= MAX_BEAM_SIZE
    ):
        raise ProtocolError(
            "bad_option", f"'beam_size' must be an integer in [1, {MAX_BEAM_SIZE}]"
        )
    for key in ("endpointing", "partials", "rescore"):
        if not isinstance(raw.get(key, True), bool):
            raise ProtocolError("bad_option", f"'{key}' must be true or false")
    if raw.get("rescore") and not raw.get("endpointing", True):
        raise ProtocolError(
            "bad_option",
            "'rescore' needs endpointing: it decodes each closed segment again",
        )
    silence = None
    if raw.get("trailing_silence") is not None:
        silence = _number(raw, "trailing_silence", 1.0, 0.1, 30.0)
    vtln: float | tuple[float, ...] | None = None
    if isinstance(raw.get("vtln"), list):  # a warp ensemble
        ensemble = parse_vtln(raw["vtln"])
        if not isinstance(ensemble, tuple):
            low, high = VTLN_RANGE
            raise ProtocolError(
                "bad_option",
                f"'vtln' as a list must hold 2-{MAX_ENSEMBLE} distinct numbers in "
                f"[{low:g}, {high:g}], got {raw['vtln']!r}",
            )
        vtln = ensemble
    elif raw.get("vtln") is not None:
        vtln = _number(raw, "vtln", 1.0, *VTLN_RANGE)
    options = AsrOptions(
        beam_size=beam,
        endpointing=raw.get("endpointing", True),
        trailing_silence=silence,
        partials=raw.get("partials", True),
        vtln=vtln,
        rescore=raw.get("rescore"),
    )
    return AsrStart(rate, fmt, options)


# OpenAI's built-in voice names: accepted as the default voice so that
# clients written for that API work unchanged.
OPENAI_VOICES = frozenset(
    "alloy ash ballad cedar coral echo fable marin nova onyx sage shimmer verse".split()
)


@dataclass(frozen=True)
class TtsRequest:
    text: str
    voice: str = "default"
    pace: float = 1.0
    pitch: float = 0.0  # semitones
    volume: float = 1.0
    format: SampleFormat = "s16le"
    id: str | None = None


def parse_tts_request(message: dict[str, Any], max_chars: int) -> TtsRequest:
    """Check a TTS ``synthesize`` message."""
    _check_keys(
        message,
        {"type", "id", "text", "voice", "pace", "pitch", "volume", "format"},
        "synthesize",
    )
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("bad_text", "'text' must be a non-empty string")
    if len(text) > max_chars:
        raise ProtocolError(
            "text_too_long", f"text of {len(text)} characters; the limit is {max_chars}"
        )
    voice = message.get("voice") or "default"
    if not isinstance(voice, str):
        raise ProtocolError("unknown_voice", "'voice' must be a string")
    request_id = message.get("id")
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > MAX_ID_CHARS
    ):
        raise ProtocolError(
            "bad_option", f"'id' must be a string of at most {MAX_ID_CHARS} characters"
        )
    return TtsRequest(
        text=text,
        voice=voice,
        pace=_number(message, "pace", 1.0, 0.25, 4.0),
        pitch=_number(message, "pitch", 0.0, -12.0, 12.0),
        volume=_number(message, "volume", 1.0, 0.0, 4.0),
        format=_sample_format(message, "format"),
        id=request_id,
    )
