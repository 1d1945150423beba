"""The ``/asr`` WebSocket endpoint: live recognition of one audio stream per
connection (see ``server/PROTOCOL.md``).

The session parses the client's messages on the event loop, turns audio
frames into float32 samples and hands them to the ``AsrBatcher``; results come
back through ``_deliver`` and go out through the session's outbox. A client
that sends audio faster than it is decoded is not read from until the backlog
halves (TCP backpressure instead of unbounded buffering).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from server.batching import AsrSlot, ChunkResult
from server.protocol import AsrStart, ProtocolError, parse_asr_start, parse_json
from server.session import Stop, WsSession
from speech.asr.decoding import DEFAULT_ENDPOINT_RULES, EndpointRule
from speech.audio import pcm_to_float

if TYPE_CHECKING:
    from server.hub import Hub
    from speech.asr.recognizer import StreamEvent

__all__ = ["AsrEndpoint", "event_message"]

logger = logging.getLogger("server.asr")

FINISHING_STOPS = ("server_shutdown", "session_too_long", "idle_timeout")


def event_message(event: StreamEvent, processed: float) -> dict[str, Any]:
    """A partial or final result as the protocol's JSON message."""
    segment = event.segment
    words = []
    for word in segment.words:
        item: dict[str, Any] = {
            "word": word.text,
            "start": round(word.start, 3),
            "end": round(word.end, 3),
        }
        if word.confidence is not None:
            item["confidence"] = round(word.confidence, 4)
        words.append(item)
    return {
        "type": event.kind,
        "segment": event.index,
        "text": segment.text,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "words": words,
        "processed": round(processed, 3),
    }


def endpoint_rules(start: AsrStart) -> tuple[EndpointRule, ...] | None:
    if not start.options.endpointing:
        return None
    silence = start.options.trailing_silence
    if silence is None:
        return DEFAULT_ENDPOINT_RULES
    return tuple(
        EndpointRule(rule.must_contain_speech, silence, rule.min_utterance_length)
        if rule.must_contain_speech
        else rule
        for rule in DEFAULT_ENDPOINT_RULES
    )


class AsrEndpoint:
    """ASGI app of ``/asr``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        session = WsSession(self.hub, "asr", scope, receive, send)
        if not await session.admit():
            return
        await _AsrSession(self.hub, session).run()


class _AsrSession:
    def __init__(self, hub: Hub, session: WsSession) -> None:
        self.hub = hub
        self.session = session
        self.start: AsrStart | None = None
        self.slot: AsrSlot | None = None
        self.finished = asyncio.Event()
        self.segment = 0  # index of the open segment
        self.finals = 0

    async def run(self) -> None:
        session = self.session
        stop = Stop()
        try:
            if self.hub.asr_batcher is None:
                raise ProtocolError(
                    "not_served", "this server does not run recognition"
                )
            while True:
                message = await session.next_message()
                if message.get("text") is not None:
                    if self._on_text(message["text"]):
                        break
                else:
                    await self._on_audio(message.get("bytes") or b"")
        except Stop as raised:
            stop = raised
        except ProtocolError as error:
            stop = Stop(error)
        except Exception:
            logger.exception("asr session failed")
            stop = Stop(ProtocolError("internal_error", "the server failed"))
        stop.detach()
        try:
            # A normal end and the server's own limits still get the last
            # final; a client error or a vanished client do not.
            graceful = stop.error is None or stop.error.code in FINISHING_STOPS
            if graceful and self.slot is not None and not session.disconnected:
                await self._finish()
        finally:
            if self.slot is not None and self.hub.asr_batcher is not None:
                self.hub.asr_batcher.remove(self.slot)
            await session.close(stop)
            session.log_end(
                stop,
                audio_seconds=round(self.slot.received / self.slot.input_rate, 3)
                if self.slot
                else 0.0,
                finals=self.finals,
            )
            await session.cleanup()
            if self.slot is not None:
                self.slot.release()
                self.slot = None

    async def _finish(self) -> None:
        """End of input: decode what is left and wait for the last final."""
        assert self.slot is not None and self.hub.asr_batcher is not None
        self.slot.ending = True
        self.session.busy = True
        self.hub.asr_batcher.wake()
        try:
            await asyncio.wait_for(self.finished.wait(), self.hub.config.send_timeout)
        except TimeoutError:
            logger.warning("asr: no last final in time", extra={"fields": {}})

    # ---------------------------------------------------------------- input

    def _on_text(self, text: str) -> bool:
        """Handle a JSON message; True after 'end'."""
        message = parse_json(text)
        kind = message["type"]
        if kind == "start":
            if self.start is not None:
                raise ProtocolError("already_started", "this stream has started")
            self._start(parse_asr_start(message))
            return False
        if kind == "end":
            if self.start is None:
                raise ProtocolError("not_started", "'end' before 'start'")
            return True
        raise ProtocolError(
            "unknown_type", f"unknown message type {kind!r} (expected start or end)"
        )

    def _start(self, start: AsrStart) -> None:
        hub = self.hub
        assert hub.recognizer is not None and hub.asr_batcher is not None
        rules = endpoint_rules(start)
        rescore = start.options.rescore
        if rescore is None:
            rescore = hub.config.rescore and rules is not None
        stream = hub.recognizer.stream(
            beam_size=start.options.beam_size,
            endpoint_rules=rules,
            input_sample_rate=start.sample_rate,
            vtln=start.options.vtln,
            rescore=rescore,
        )
        self.start = start
        self.slot = AsrSlot(stream, start.sample_rate, self._deliver)
        hub.asr_batcher.add(self.slot)
        config = hub.recognizer.config
        self.session.send_json(
            {
                "type": "started",
                "session": self.session.id,
                "sample_rate": start.sample_rate,
                "format": start.format,
                "model_sample_rate": config.sample_rate,
                "chunk_seconds": round(
                    config.streaming.chunk_size * config.frame_seconds, 3
                ),
                "rescore": rescore,
            }
        )

    async def _on_audio(self, data: bytes) -> None:
        if self.start is None or self.slot is None:
            raise ProtocolError("not_started", "audio before the 'start' message")
        width = self.start.bytes_per_sample
        if len(data) % width:
            raise ProtocolError(
                "bad_frame",
                f"{self.start.format} frames need a multiple of {width} bytes, "
                f"got {len(data)}",
            )
        if not data:
            return
        samples = pcm_to_float(data, self.start.format)
        if self.start.format == "f32le" and not np.isfinite(samples).all():
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        slot = self.slot
        slot.add_audio(samples, time.monotonic())
        assert self.hub.asr_batcher is not None
        self.hub.asr_batcher.wake()
        if slot.backlog_seconds > self.hub.config.max_backlog_seconds:
            # Stop reading until the decoder catches up (TCP backpressure).
            slot.backlog_ok.clear()
            self.session.busy = True
            try:
                await self.session.wait(slot.backlog_ok)
            finally:
                self.session.busy = False

    # --------------------------------------------------------------- output

    def _deliver(
        self, chunks: list[ChunkResult], done: bool, error: Exception | None
    ) -> None:
        session = self.session
        assert self.start is not None
        messages = []
        for chunk in chunks:
            for event in chunk.events:
                if event.kind == "partial" and not self.start.options.partials:
                    continue
                if event.kind == "final":
                    self.finals += 1
                    self.segment = event.index + 1
                messages.append(event_message(event, chunk.processed))
        if done and error is None:
            if messages and messages[-1]["type"] == "final":
                messages[-1]["last"] = True
            else:
                processed = chunks[-1].processed if chunks else 0.0
                messages.append(
                    {
                        "type": "final",
                        "segment": self.segment,
                        "text": "",
                        "start": 0.0,
                        "end": 0.0,
                        "words": [],
                        "processed": round(processed, 3),
                        "last": True,
                    }
                )
        for message in messages:
            session.send_json(message)
        if error is not None:
            logger.error(
                "asr stream failed: %s",
                error,
                extra={"fields": {"session": session.id}},
            )
            session.stop(ProtocolError("internal_error", "recognition failed"))
        if done:
            self.finished.set()
