"""A Python client of the server's WebSocket protocol (``server/PROTOCOL.md``),
on the ``websockets`` library; it imports neither the server nor the models.

Recognition::

    async with AsrClient("ws://127.0.0.1:8000/asr", sample_rate=16000) as asr:
        await asr.send(samples)            # float32 or int16 numpy, or raw bytes
        await asr.end()
        async for result in asr.results():  # partials and finals, as dicts
            print(result["type"], result["text"])

    finals = transcribe_file("talk.wav", realtime=True)   # sync helper

Synthesis::

    async with TtsClient("ws://127.0.0.1:8000/tts") as tts:
        async for chunk in tts.synthesize("Hello there."):   # float32 chunks
            play(chunk, tts.sample_rate)

    audio, rate = synthesize("Hello there.")                # sync helper

A refusal (a JSON error from the server) raises ``ServerError`` with the
error's ``code``, ``message`` and the close code.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

__all__ = [
    "AsrClient",
    "ServerError",
    "TtsClient",
    "main_asr",
    "main_tts",
    "stream_audio",
    "synthesize",
    "transcribe_file",
]

DEFAULT_ASR_URL = "ws://127.0.0.1:8000/asr"
DEFAULT_TTS_URL = "ws://127.0.0.1:8000/tts"


class ServerError(Exception):
    """The server refused or ended the session with a JSON error."""

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.close_code = close_code


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _connect(url: str, token: str | None) -> Any:
    from websockets.asyncio.client import connect

    return await connect(
        url,
        additional_headers=_headers(token),
        compression=None,
        max_size=16 << 20,
        open_timeout=30,
    )


async def _error_from(ws: Any, message: dict[str, Any]) -> ServerError:
    """A ServerError for an error message, with the close code once it comes."""
    try:
        await asyncio.wait_for(ws.wait_closed(), 5)
    except Exception:
        pass
    return ServerError(
        message.get("code", "error"), message.get("message", ""), ws.close_code
    )


def to_pcm(audio: np.ndarray | bytes, fmt: str) -> bytes:
    """float (in [-1, 1]) or int16 samples -> little-endian PCM bytes."""
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return bytes(audio)
    array = np.asarray(audio)
    if fmt == "s16le":
        if array.dtype != np.int16:
            scaled = np.round(np.clip(array.astype(np.float32), -1, 1) * 32768.0)
            array = np.clip(scaled, -32768, 32767).astype(np.int16)
        return array.astype("<i2").tobytes()
    if array.dtype == np.int16:
        array = array.astype(np.float32) / 32768.0
    return array.astype("<f4").tobytes()


def from_pcm(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "s16le":
        return np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32768.0)
    return np.frombuffer(data, "<f4").astype(np.float32)


# ----------------------------------------------------------------------- ASR


class AsrClient:
    """One recognition stream: ``start`` on entering, audio, ``end``, results."""

    def __init__(
        self,
        url: str = DEFAULT_ASR_URL,
        sample_rate: int = 16000,
        format: str = "s16le",
        options: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> None:
        self.url = url
        self.sample_rate = sample_rate
        self.format = format
        self.options = options or {}
        self.token = token
        self.ws: Any = None
        self.info: dict[str, Any] = {}
        self.ended = False

    async def __aenter__(self) -> AsrClient:
        self.ws = await _connect(self.url, self.token)
        start = {
            "type": "start",
            "sample_rate": self.sample_rate,
            "format": self.format,
        }
        if self.options:
            start["options"] = self.options
        await self.ws.send(json.dumps(start))
        message = json.loads(await self.ws.recv())
        if message.get("type") == "error":
            raise await _error_from(self.ws, message)
        self.info = message
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def send(self, audio: np.ndarray | bytes) -> None:
        await self.ws.send(to_pcm(audio, self.format))

    async def end(self) -> None:
        self.ended = True
        await self.ws.send(json.dumps({"type": "end"}))

    async def results(self) -> AsyncIterator[dict[str, Any]]:
        """Partial and final results until the last final.

        When the server ends the stream itself (a limit, a shutdown), the last
        final is followed by the reason, raised here as ``ServerError``.
        """
        from websockets.exceptions import ConnectionClosed

        while True:
            try:
                raw = await self.ws.recv()
            except ConnectionClosed:
                return
            message = json.loads(raw)
            if message.get("type") == "error":
                raise await _error_from(self.ws, message)
            yield message
            if message.get("type") == "final" and message.get("last"):
                if not self.ended:
                    try:
                        raw = await asyncio.wait_for(self.ws.recv(), 5)
                    except (ConnectionClosed, TimeoutError):
                        return
                    reason = json.loads(raw)
                    if reason.get("type") == "error":
                        raise await _error_from(self.ws, reason)
                return

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def _read_audio(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    from speech.audio import load_audio

    rate = int(sf.info(path).samplerate)
    return load_audio(path, rate), rate


async def stream_audio(
    audio: np.ndarray,
    sample_rate: int,
    url: str = DEFAULT_ASR_URL,
    realtime: bool = False,
    frame_seconds: float = 0.1,
    token: str | None = None,
    options: dict[str, Any] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    format: str = "s16le",
) -> list[dict[str, Any]]:
    """Stream float32 samples (at real-time pace with ``realtime``) and
    return every result message; ``on_result`` sees each as it comes."""
    frame = max(1, int(round(frame_seconds * sample_rate)))
    results: list[dict[str, Any]] = []
    async with AsrClient(url, sample_rate, format, options, token) as asr:

        async def sender() -> None:
            started = time.monotonic()
            for index, offset in enumerate(range(0, len(audio), frame)):
                if realtime:
                    due = started + (index + 1) * frame / sample_rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                await asr.send(audio[offset : offset + frame])
            await asr.end()

        sending = asyncio.create_task(sender())
        try:
            async for result in asr.results():
                results.append(result)
                if on_result is not None:
                    on_result(result)
        finally:
            if not sending.done():
                sending.cancel()
            try:
                await sending
            except (asyncio.CancelledError, Exception):
                pass
    return results


def transcribe_file(
    path: str,
    url: str = DEFAULT_ASR_URL,
    realtime: bool = False,
    token: str | None = None,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The final results of streaming a file (any format soundfile reads)."""
    audio, rate = _read_audio(path)
    results = asyncio.run(
        stream_audio(audio, rate, url, realtime, token=token, options=options)
    )
    return [r for r in results if r["type"] == "final" and r["text"]]


# ----------------------------------------------------------------------- TTS


class TtsClient:
    """A synthesis connection: several requests, one after another."""

    def __init__(self, url: str = DEFAULT_TTS_URL, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.ws: Any = None
        self.sample_rate: int | None = None
        self.last_done: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self._count = 0

    async def __aenter__(self) -> TtsClient:
        self.ws = await _connect(self.url, self.token)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def request(self, text: str, **fields: Any) -> str:
        """Send a request without reading; returns its id."""
        self._count += 1
        request_id = str(fields.pop("id", f"r{self._count}"))
        await self.ws.send(
            json.dumps({"type": "synthesize", "id": request_id, "text": text, **fields})
        )
        return request_id

    async def cancel(self, all: bool = False) -> None:
        await self.ws.send(json.dumps({"type": "cancel", "all": all}))

    async def receive(self) -> AsyncIterator[tuple[dict[str, Any], bytes | None]]:
        """Events as they come: ``(event, audio bytes or None)`` pairs; a
        ``chunk`` event comes with its audio."""
        pending: dict[str, Any] | None = None
        while True:
            raw = await self.ws.recv()
            if isinstance(raw, bytes):
                yield (pending or {"type": "chunk"}), raw
                pending = None
                continue
            message = json.loads(raw)
            self.events.append(message)
            if message["type"] == "error":
                raise await _error_from(self.ws, message)
            if message["type"] == "chunk":
                pending = message
                continue
            if message["type"] == "start":
                self.sample_rate = int(message["sample_rate"])
            if message["type"] == "done":
                self.last_done = message
            yield message, None

    async def synthesize(
        self,
        text: str,
        voice: str = "default",
        pace: float = 1.0,
        pitch: float = 0.0,
        volume: float = 1.0,
        format: str = "f32le",
    ) -> AsyncIterator[np.ndarray]:
        """Float32 chunks of one request as they are made."""
        request_id = await self.request(
            text, voice=voice, pace=pace, pitch=pitch, volume=volume, format=format
        )
        async for event, audio in self.receive():
            if audio is not None and event.get("id") == request_id:
                yield from_pcm(audio, format)
            elif event["type"] == "done" and event.get("id") == request_id:
                return


def synthesize(
    text: str,
    url: str = DEFAULT_TTS_URL,
    token: str | None = None,
    **options: Any,
) -> tuple[np.ndarray, int]:
    """The whole audio of ``text`` and its sample rate."""

    async def run() -> tuple[np.ndarray, int]:
        async with TtsClient(url, token) as tts:
            chunks = [c async for c in tts.synthesize(text, **options)]
            rate = tts.sample_rate or 16000
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio, rate

    return asyncio.run(run())


# ----------------------------------------------------------------------- CLI


def main_asr(args: Any) -> int:
    """``speech client asr FILE``: finals on stdout (one line per segment, or
    every message as JSON with ``--json``), partials on stderr at a terminal."""
    from speech.errors import AudioError

    try:
        audio, rate = _read_audio(args.file)
    except AudioError as error:
        print(f"speech client: {error}", file=sys.stderr)
        return 2
    as_json = getattr(args, "json", False)
    live = sys.stderr.isatty() and not as_json

    def show(result: dict[str, Any]) -> None:
        if as_json:
            print(json.dumps(result), flush=True)
        elif result["type"] == "final":
            if live:
                sys.stderr.write("\r\033[K")
            if result["text"]:
                print(result["text"], flush=True)
        elif live:
            sys.stderr.write("\r\033[K" + result["text"][-70:])
            sys.stderr.flush()

    options: dict[str, Any] = {}
    if getattr(args, "beam_size", None) is not None:
        options["beam_size"] = args.beam_size
    vtln = getattr(args, "vtln", None)
    if vtln is not None:
        options["vtln"] = list(vtln) if isinstance(vtln, tuple) else vtln
    if getattr(args, "rescore", None) is not None:
        options["rescore"] = args.rescore
    try:
        asyncio.run(
            stream_audio(
                audio,
                rate,
                args.url,
                args.realtime,
                token=args.token,
                options=options or None,
                on_result=show,
            )
        )
    except ServerError as error:
        print(f"speech client: server error {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"speech client: cannot connect to {args.url}: {error}", file=sys.stderr)
        return 1
    return 0


def main_tts(args: Any) -> int:
    """``speech client tts TEXT -o out.wav``."""
    from speech.audio import write_wav_atomic

    options = {}
    for name in ("voice", "pace", "pitch"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    try:
        audio, rate = synthesize(args.text, args.url, args.token, **options)
    except ServerError as error:
        print(f"speech client: server error {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"speech client: cannot connect to {args.url}: {error}", file=sys.stderr)
        return 1
    write_wav_atomic(args.output, audio, rate)
    print(f"wrote {args.output} ({len(audio) / rate:.2f} s)", file=sys.stderr)
    return 0
