"""The ``/tts`` WebSocket endpoint: synthesis requests, one after another on
a connection, streamed as binary audio with JSON events around it (see
``server/PROTOCOL.md``).

Requests queue on the connection (at most ``max_queued_requests``); the
current one runs in the ``TtsBatcher`` together with other connections'
requests. ``cancel`` stops the current request (its ``done`` says
``"cancelled": true``) and, with ``"all": true``, drops the queued ones too.
Synthesis pauses while the connection's unsent output is large, so a slow
reader costs memory only up to ``max_outbox_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from server.batching import TtsJob
from server.protocol import ProtocolError, TtsRequest, parse_json, parse_tts_request
from server.session import Stop, WsSession
from speech.audio import float_to_pcm

if TYPE_CHECKING:
    from server.hub import Hub

__all__ = ["TtsEndpoint"]

logger = logging.getLogger("server.tts")


class TtsEndpoint:
    """ASGI app of ``/tts``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        session = WsSession(self.hub, "tts", scope, receive, send)
        if not await session.admit():
            return
        await _TtsSession(self.hub, session).run()


class _TtsSession:
    def __init__(self, hub: Hub, session: WsSession) -> None:
        self.hub = hub
        self.session = session
        self.queue: deque[TtsRequest] = deque()
        self.job: TtsJob | None = None
        self.idle = asyncio.Event()  # no current request
        self.idle.set()
        self.requests = 0
        self.audio_samples = 0
        session.on_drained = self._on_drained

    async def run(self) -> None:
        session = self.session
        stop = Stop()
        try:
            if self.hub.tts_batcher is None:
                raise ProtocolError("not_served", "this server does not run synthesis")
            while True:
                message = await session.next_message()
                if message.get("text") is None:
                    raise ProtocolError(
                        "unexpected_binary", "the TTS endpoint takes JSON messages only"
                    )
                self._on_text(message["text"])
        except Stop as raised:
            stop = raised
        except ProtocolError as error:
            stop = Stop(error)
        except Exception:
            logger.exception("tts session failed")
            stop = Stop(ProtocolError("internal_error", "the server failed"))
        stop.detach()
        try:
            if stop.error is not None and stop.error.code == "server_shutdown":
                # Finish the current request; drop the queued ones.
                self.queue.clear()
                if self.job is not None and not session.disconnected:
                    try:
                        await asyncio.wait_for(
                            self.idle.wait(), self.hub.config.shutdown_timeout
                        )
                    except TimeoutError:
                        pass
        finally:
            self.queue.clear()
            if self.job is not None and self.hub.tts_batcher is not None:
                self.hub.tts_batcher.cancel(self.job)
                self.job = None
            await session.close(stop)
            session.log_end(
                stop,
                requests=self.requests,
                audio_seconds=round(self.audio_samples / self._rate(), 3),
            )
            await session.cleanup()
            session.on_drained = None

    def _rate(self) -> int:
        synthesizer = self.hub.synthesizer
        return synthesizer.sample_rate if synthesizer is not None else 1

    # ---------------------------------------------------------------- input

    def _on_text(self, text: str) -> None:
        message = parse_json(text)
        kind = message["type"]
        if kind == "synthesize":
            request = parse_tts_request(message, self.hub.config.max_text_chars)
            self.hub.voice(request.voice)  # unknown voices fail now
            if len(self.queue) >= self.hub.config.max_queued_requests:
                raise ProtocolError(
                    "too_many_requests",
                    f"at most {self.hub.config.max_queued_requests} requests may "
                    "wait on one connection",
                )
            self.queue.append(request)
            self.session.busy = True
            self._next()
        elif kind == "cancel":
            if message.get("all"):
                self.queue.clear()
            self._cancel()
        else:
            raise ProtocolError(
                "unknown_type",
                f"unknown message type {kind!r} (expected synthesize or cancel)",
            )

    def _cancel(self) -> None:
        job = self.job
        if job is None:
            return
        assert self.hub.tts_batcher is not None
        self.hub.tts_batcher.cancel(job)
        self._done(job, cancelled=True)

    # --------------------------------------------------------------- output

    def _next(self) -> None:
        if self.job is not None or not self.queue:
            self.session.busy = self.job is not None
            return
        request = self.queue.popleft()
        synthesizer = self.hub.voice(request.voice)
        self.requests += 1
        job = TtsJob(
            request,
            synthesizer,
            on_audio=lambda samples: self._on_audio(job, samples),
            on_done=lambda error: self._on_done(job, error),
            can_produce=self.session.outbox_drained.is_set,
        )
        self.job = job
        self.idle.clear()
        self.session.busy = True
        self.session.send_json(
            {
                "type": "start",
                "id": request.id,
                "sample_rate": synthesizer.sample_rate,
                "format": request.format,
                "channels": 1,
            }
        )
        assert self.hub.tts_batcher is not None
        self.hub.tts_batcher.submit(job)

    def _on_audio(self, job: TtsJob, samples: np.ndarray) -> None:
        if job is not self.job:
            return
        offset = job.produced - len(samples)
        self.session.send_json(
            {
                "type": "chunk",
                "id": job.request.id,
                "offset": offset,
                "samples": len(samples),
            }
        )
        self.session.send_bytes(float_to_pcm(samples, job.request.format))
        self.audio_samples += len(samples)

    def _on_done(self, job: TtsJob, error: Exception | None) -> None:
        if job is not self.job:
            return
        if error is not None:
            logger.error(
                "synthesis failed: %s",
                error,
                extra={"fields": {"session": self.session.id}},
            )
            self.session.stop(ProtocolError("internal_error", "synthesis failed"))
            self.job = None
            self.idle.set()
            return
        self._done(job, cancelled=False)

    def _done(self, job: TtsJob, cancelled: bool) -> None:
        rate = job.synthesizer.sample_rate
        self.session.send_json(
            {
                "type": "done",
                "id": job.request.id,
                "samples": job.produced,
                "duration": round(job.produced / rate, 3),
                "cancelled": cancelled,
            }
        )
        self.job = None
        self.idle.set()
        if not self.session.stopping:
            self._next()
        self.session.busy = self.job is not None or bool(self.queue)

    def _on_drained(self) -> None:
        if self.job is not None and self.hub.tts_batcher is not None:
            self.hub.tts_batcher.wake()
