"""The state of one running server: settings, models, batchers, metrics, the
open sessions, admission and the graceful drain."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from server.batching import AsrBatcher, TtsBatcher
from server.config import ServerConfig
from server.metrics import Metrics
from server.protocol import OPENAI_VOICES, ProtocolError
from server.session import origin_allowed, token_ok

if TYPE_CHECKING:
    from server.session import WsSession
    from speech.asr.recognizer import Recognizer
    from speech.tts.synthesizer_base import SynthesizerBase

__all__ = ["Hub"]

logger = logging.getLogger("server")


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class Hub:
    def __init__(
        self,
        config: ServerConfig,
        recognizer: Recognizer | None,
        synthesizer: SynthesizerBase | None,
        voice_name: str = "default",
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.recognizer = recognizer
        self.synthesizer = synthesizer
        self.voices: dict[str, SynthesizerBase] = {}
        if synthesizer is not None:
            self.voices = {"default": synthesizer, voice_name: synthesizer}
        self.sessions: set[WsSession] = set()
        self.http_active = 0
        self.draining = False
        self.started = time.monotonic()
        self.asr_batcher: AsrBatcher | None = None
        self.tts_batcher: TtsBatcher | None = None
        self.offline_executor: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._trim_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the batchers (needs the running event loop)."""
        self.loop = asyncio.get_running_loop()
        if self.recognizer is not None:
            self.asr_batcher = AsrBatcher(self.recognizer, self.config, self.metrics)
            self.asr_batcher.start()
            self.offline_executor = ThreadPoolExecutor(
                1, thread_name_prefix="asr-offline"
            )
        if self.synthesizer is not None:
            self.tts_batcher = TtsBatcher(self.config, self.metrics)
            self.tts_batcher.start()
        trim = _malloc_trim()
        if trim is not None and self.config.trim_interval > 0:
            self._trim_task = asyncio.create_task(self._trim(trim), name="malloc-trim")

    async def _trim(self, trim: Any) -> None:
        """Return freed heap memory to the OS now and then.

        The batched steps allocate state tensors of a different size at
        every batch size; glibc keeps the freed memory in its arenas, so the
        resident size creeps up under churn although nothing leaks (measured:
        +14 MB/min in a soak of the default-size models, flat with this).
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.trim_interval)
            await loop.run_in_executor(None, trim, 0)

    async def stop(self) -> None:
        if self._trim_task is not None:
            self._trim_task.cancel()
            try:
                await self._trim_task
            except asyncio.CancelledError:
                pass
        for batcher in (self.asr_batcher, self.tts_batcher):
            if batcher is not None:
                await batcher.stop()
        if self.offline_executor is not None:
            self.offline_executor.shutdown(wait=True, cancel_futures=True)

    async def drain(self, timeout: float | None = None) -> None:
        """Graceful shutdown: refuse new work, let every session finish what
        is in flight (ASR: the last final; TTS: the current request), close
        them with 1001, and wait for HTTP requests; give up after
        ``timeout`` seconds and drop what is left."""
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        self.draining = True
        logger.info(
            "drain",
            extra={
                "fields": {"sessions": len(self.sessions), "http": self.http_active}
            },
        )
        for session in list(self.sessions):
            session.stop(
                ProtocolError("server_shutdown", "the server is shutting down"),
                reason="shutdown",
            )
        deadline = time.monotonic() + timeout
        while (self.sessions or self.http_active) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.abort()

    # ------------------------------------------------------------- admission

    def admission_error(self, scope: dict[str, Any]) -> ProtocolError | None:
        """Why a new WebSocket or HTTP request is refused (None: admitted)."""
        if self.draining:
            return ProtocolError("server_shutdown", "the server is shutting down")
        if not token_ok(scope, self.config.token):
            return ProtocolError(
                "unauthorized",
                "a bearer token is required: 'Authorization: Bearer TOKEN' or "
                "'?token=TOKEN'",
            )
        if not origin_allowed(scope, self.config.allowed_origins):
            return ProtocolError("origin_not_allowed", "this Origin is not allowed")
        return None

    @property
    def active(self) -> int:
        return len(self.sessions) + self.http_active

    def _capacity_error(self) -> ProtocolError | None:
        if self.active >= self.config.max_sessions:
            return ProtocolError(
                "server_busy",
                f"the server runs its maximum of {self.config.max_sessions} "
                "sessions; try again later",
            )
        return None

    def open_session(self, session: WsSession) -> ProtocolError | None:
        error = self._capacity_error()
        if error is not None:
            return error
        self.sessions.add(session)
        self.metrics.sessions_total.labels(session.kind).inc()
        self.metrics.sessions_active.labels(session.kind).inc()
        return None

    def close_session(self, session: WsSession) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
            self.metrics.sessions_active.labels(session.kind).dec()

    def open_http(self) -> ProtocolError | None:
        error = self._capacity_error()
        if error is None:
            self.http_active += 1
        return error

    def close_http(self) -> None:
        self.http_active -= 1

    # ---------------------------------------------------------------- models

    def voice(self, name: str) -> SynthesizerBase:
        if self.synthesizer is None:
            raise ProtocolError(
                "not_served", "this server does not run speech synthesis"
            )
        if name in self.voices:
            return self.voices[name]
        if name in OPENAI_VOICES and len(set(map(id, self.voices.values()))) == 1:
            return self.synthesizer
        raise ProtocolError(
            "unknown_voice",
            f"unknown voice {name!r}; this server has {sorted(self.voices)}",
        )

    def health(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "status": "draining" if self.draining else "ok",
            "uptime": round(time.monotonic() - self.started, 3),
            "sessions": {
                "asr": sum(1 for s in self.sessions if s.kind == "asr"),
                "tts": sum(1 for s in self.sessions if s.kind == "tts"),
                "http": self.http_active,
                "max": self.config.max_sessions,
            },
        }
        if self.recognizer is not None:
            config = self.recognizer.config
            geometry = config.streaming
            info["asr"] = {
                "backend": self.recognizer.backend.name,
                "sample_rate": config.sample_rate,
                "chunk_seconds": round(geometry.chunk_size * config.frame_seconds, 3),
            }
        if self.synthesizer is not None:
            info["tts"] = {
                "backend": self.synthesizer.backend,
                "voices": sorted(self.voices),
                "sample_rate": self.synthesizer.sample_rate,
            }
        return info
