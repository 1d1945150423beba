"""OpenAI-compatible HTTP endpoints.

``POST /v1/audio/transcriptions``: a multipart upload (``file``; ``model``,
``prompt``, ``temperature`` and ``timestamp_granularities[]`` are accepted
and ignored; ``language`` must be English when given). ``response_format``:
``json`` (``{"text"}``), ``text``, ``srt``, ``vtt`` or ``verbose_json``
(duration, segments and word timestamps). The file is decoded offline (the
model's offline chunk geometry) in a worker thread of its own, so a long
upload does not stall the live streams' batcher thread.

``POST /v1/audio/speech``: JSON ``{"model", "input", "voice", "speed",
"response_format"}``; ``response_format`` ``wav`` (the default here, at the
voice's rate, sizes in the header set to 0xFFFFFFFF because the length is not
known when streaming starts) or ``pcm`` (16-bit little-endian mono at
24 kHz, as OpenAI's). The audio is streamed as it is made, from the same
batcher as the WebSocket TTS.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param",
"code"}}``, with the status of the error table in ``server.protocol``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from server.batching import TtsJob
from server.protocol import ProtocolError, TtsRequest
from speech.asr.frontend import VTLN_RANGE
from speech.asr.recognizer import MAX_ENSEMBLE, parse_vtln
from speech.audio import float_to_pcm
from speech.errors import AudioError
from speech.formats import Transcript, to_srt, to_txt, to_vtt

if TYPE_CHECKING:
    from server.hub import Hub

__all__ = ["error_response", "speech", "transcriptions"]

logger = logging.getLogger("server.http")

TRANSCRIPTION_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
SPEECH_FORMATS = ("wav", "pcm")
PCM_RATE = 24000  # OpenAI's raw PCM rate
MAX_JSON_BYTES = 1 << 20


def error_response(error: ProtocolError) -> JSONResponse:
    status = error.http_status
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse(
        {
            "error": {
                "message": error.message,
                "type": kind,
                "param": None,
                "code": error.code,
            }
        },
        status_code=status,
    )


class _TooLarge(Exception):
    pass


def _limited_request(request: Request, limit: int) -> Request:
    """The same request, whose body raises ``_TooLarge`` past ``limit`` bytes
    (also for uploads without a Content-Length)."""
    received = 0
    receive = request.receive

    async def counting() -> Any:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise _TooLarge
        return message

    return Request(request.scope, counting)


async def _admit(request: Request, endpoint: str) -> tuple[Hub, ProtocolError | None]:
    hub: Hub = request.app.state.hub
    error = hub.admission_error(request.scope)
    if error is None:
        error = hub.open_http()
    if error is not None:
        hub.metrics.refusals_total.labels(error.code).inc()
        hub.metrics.http_requests_total.labels(endpoint, str(error.http_status)).inc()
    return hub, error


def _finish(
    hub: Hub, endpoint: str, status: int, started: float, **fields: Any
) -> None:
    seconds = time.perf_counter() - started
    hub.metrics.http_requests_total.labels(endpoint, str(status)).inc()
    hub.metrics.http_seconds.labels(endpoint).observe(seconds)
    logger.info(
        "http_request",
        extra={
            "fields": {
                "endpoint": endpoint,
                "status": status,
                "seconds": round(seconds, 3),
                **fields,
            }
        },
    )


# ------------------------------------------------------------ transcriptions


def verbose_json(transcript: Transcript) -> dict[str, Any]:
    segments = []
    words = []
    for index, segment in enumerate(transcript.segments):
        segments.append(
            {
                "id": index,
                "seek": 0,
                "start": round(segment.start, 3),
                "end": round(segment.end, 3),
                "text": segment.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
        )
        words += [
            {"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
            for w in segment.words
        ]
    return {
        "task": "transcribe",
        "language": "english",
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": segments,
        "words": words,
        "usage": {"type": "duration", "seconds": round(transcript.duration, 3)},
    }


def _render(transcript: Transcript, fmt: str) -> Response:
    if fmt == "json":
        return JSONResponse({"text": transcript.text})
    if fmt == "verbose_json":
        return JSONResponse(verbose_json(transcript))
    if fmt == "text":
        return PlainTextResponse(to_txt(transcript) or "\n")
    if fmt == "srt":
        return PlainTextResponse(to_srt(transcript))
    return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")


def _vtln_field(value: Any) -> float | str | tuple[float, ...] | None:
    """The form's ``vtln`` (an extension): "auto", a factor within
    ``VTLN_RANGE``, a warp ensemble ("0.85,1,1.15"), or absent (the server's
    setting)."""
    if value is None or value == "":
        return None
    setting = parse_vtln(value) if isinstance(value, str) else None
    if setting is None:
        low, high = VTLN_RANGE
        raise ProtocolError(
            "bad_option",
            f"'vtln' must be 'auto', a number in [{low:g}, {high:g}] or 2-"
            f"{MAX_ENSEMBLE} distinct such numbers joined by commas, got {value!r}",
        )
    return setting


async def transcriptions(request: Request) -> Response:
    endpoint = "transcriptions"
    started = time.perf_counter()
    hub, error = await _admit(request, endpoint)
    if error is not None:
        return error_response(error)
    status = 500
    path = None
    form = None
    try:
        if hub.recognizer is None or hub.offline_executor is None:
            raise ProtocolError("not_served", "this server does not run recognition")
        limit = hub.config.max_upload_bytes
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > limit + 65536
        ):
            raise ProtocolError("file_too_large", f"the upload limit is {limit} bytes")
        try:
            form = await _limited_request(request, limit + 65536).form(max_files=1)
        except _TooLarge:
            raise ProtocolError(
                "file_too_large", f"the upload limit is {limit} bytes"
            ) from None
        except Exception as failure:  # malformed multipart
            raise ProtocolError(
                "bad_request", f"bad multipart form: {failure}"
            ) from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ProtocolError("bad_request", "the form needs a 'file' part")
        fmt = str(form.get("response_format") or "json")
        if fmt not in TRANSCRIPTION_FORMATS:
            raise ProtocolError(
                "bad_format",
                f"response_format must be one of {', '.join(TRANSCRIPTION_FORMATS)}",
            )
        if str(form.get("stream") or "false").lower() in ("true", "1"):
            raise ProtocolError(
                "bad_option", "streamed transcription: use the /asr WebSocket"
            )
        language = str(form.get("language") or "en").lower()
        if language not in ("en", "english"):
            raise ProtocolError("bad_option", "this server transcribes English only")
        vtln = _vtln_field(form.get("vtln"))
        suffix = os.path.splitext(upload.filename or "")[1][:10] or ".audio"
        handle, path = tempfile.mkstemp(prefix="speech-upload-", suffix=suffix)
        with os.fdopen(handle, "wb") as out:
            size = 0
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(
                        "file_too_large", f"the upload limit is {limit} bytes"
                    )
                out.write(chunk)
        loop = asyncio.get_running_loop()
        try:
            transcript = await loop.run_in_executor(
                hub.offline_executor,
                functools.partial(hub.recognizer.transcribe, path, vtln=vtln),
            )
        except AudioError as failure:
            message = str(failure).replace(path, upload.filename or "upload")
            raise ProtocolError("bad_audio", message) from None
        response = _render(transcript, fmt)
        status = 200
        return response
    except ProtocolError as failure:
        status = failure.http_status
        hub.metrics.refusals_total.labels(failure.code).inc()
        return error_response(failure)
    except Exception:
        logger.exception("transcription failed")
        return error_response(ProtocolError("internal_error", "transcription failed"))
    finally:
        if form is not None:
            await form.close()
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass
        hub.close_http()
        _finish(hub, endpoint, status, started)


# -------------------------------------------------------------------- speech


def wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", unknown)
    )


class _StreamedAudio(StreamingResponse):
    """A streaming response that always runs ``cleanup`` once, whether the
    body finished, the client went away or the body never started."""

    def __init__(
        self, body: AsyncIterator[bytes], cleanup: Callable[[], None], **kwargs: Any
    ) -> None:
        super().__init__(body, **kwargs)
        self._cleanup = cleanup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._cleanup()


def _speech_request(body: Any, hub: Hub) -> tuple[TtsRequest, str]:
    if not isinstance(body, dict):
        raise ProtocolError("bad_request", "the body must be a JSON object")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("bad_text", "'input' must be a non-empty string")
    if len(text) > hub.config.max_text_chars:
        raise ProtocolError(
            "text_too_long",
            f"input of {len(text)} characters; the limit is "
            f"{hub.config.max_text_chars}",
        )
    voice = body.get("voice", "default")
    if isinstance(voice, dict):
        voice = voice.get("id")
    if not isinstance(voice, str):
        raise ProtocolError("unknown_voice", "'voice' must be a string")
    hub.voice(voice)
    fmt = body.get("response_format") or "wav"
    if fmt not in SPEECH_FORMATS:
        raise ProtocolError(
            "bad_format", f"response_format {fmt!r}: this server makes wav or pcm"
        )
    if body.get("stream_format") not in (None, "audio"):
        raise ProtocolError("bad_format", "stream_format: only 'audio' is supported")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise ProtocolError("bad_option", "'speed' must be a number")
    if not 0.25 <= speed <= 4.0:
        raise ProtocolError("bad_option", "'speed' must be in [0.25, 4.0]")
    return TtsRequest(text=text, voice=voice, pace=float(speed)), fmt


async def speech(request: Request) -> Response:
    endpoint = "speech"
    started = time.perf_counter()
    hub, error = await _admit(request, endpoint)
    if error is not None:
        return error_response(error)
    try:
        if hub.tts_batcher is None:
            raise ProtocolError("not_served", "this server does not run synthesis")
        try:
            raw = await _limited_request(request, MAX_JSON_BYTES).json()
        except _TooLarge:
            raise ProtocolError(
                "text_too_long", "the request body is too large"
            ) from None
        except ValueError as failure:
            raise ProtocolError("bad_json", f"invalid JSON: {failure}") from None
        tts_request, fmt = _speech_request(raw, hub)
    except ProtocolError as failure:
        hub.metrics.refusals_total.labels(failure.code).inc()
        hub.close_http()
        _finish(hub, endpoint, failure.http_status, started)
        return error_response(failure)

    synthesizer = hub.voice(tts_request.voice)
    batcher = hub.tts_batcher
    queue: asyncio.Queue[Any] = asyncio.Queue()
    buffered = [0]  # samples made but not yet written
    limit = hub.config.max_outbox_bytes // 2
    end = object()

    def on_audio(samples: np.ndarray) -> None:
        buffered[0] += len(samples)
        queue.put_nowait(samples)

    job = TtsJob(
        tts_request,
        synthesizer,
        on_audio=on_audio,
        on_done=lambda failure: queue.put_nowait(failure or end),
        can_produce=lambda: buffered[0] * 2 < limit,
    )
    batcher.submit(job)
    rate = synthesizer.sample_rate
    total = [0]
    outcome = {"status": 200}

    async def body() -> AsyncIterator[bytes]:
        resampler = None
        if fmt == "wav":
            yield wav_header(rate)
        elif rate != PCM_RATE:
            resampler = soxr.ResampleStream(rate, PCM_RATE, 1, dtype="float32")
        while True:
            item = await queue.get()
            if item is end:
                break
            if isinstance(item, Exception):
                logger.error("speech synthesis failed: %s", item)
                outcome["status"] = 500
                return
            buffered[0] -= len(item)
            batcher.wake()
            total[0] += len(item)
            if resampler is not None:
                item = resampler.resample_chunk(item)
            if len(item):
                yield float_to_pcm(item, "s16le")
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield float_to_pcm(tail, "s16le")

    def cleanup() -> None:
        if not job.finished:
            batcher.cancel(job)
            outcome["status"] = 499  # the client went away
        hub.close_http()
        _finish(
            hub,
            endpoint,
            outcome["status"],
            started,
            audio_seconds=round(total[0] / rate, 3),
        )

    return _StreamedAudio(
        body(),
        cleanup,
        media_type="audio/wav" if fmt == "wav" else "audio/pcm",
        headers={"X-Sample-Rate": str(rate if fmt == "wav" else PCM_RATE)},
    )
