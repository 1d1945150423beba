"""Settings of the real-time server: one frozen dataclass, filled from the
``speech serve`` flags or built directly in tests and benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal

from speech.backends import choose_backend

__all__ = ["ServerConfig", "choose_backend"]


@dataclass(frozen=True)
class ServerConfig:
    # where to listen and what to serve
    host: str = "127.0.0.1"
    port: int = 8000
    # None: the shipped models (speech/models/asr, speech/models/tts; with
    # backend "onnx" the shipped export, speech/models/onnx)
    asr_model: str | None = None
    tts_model: str | None = None
    asr: bool = True  # serve recognition
    tts: bool = True  # serve synthesis
    # ASR and TTS back end ("speech serve --backend auto" resolves to one of
    # them: choose_backend)
    backend: Literal["torch", "onnx"] = "torch"
    device: str = "cpu"
    # VTLN of sessions and uploads that name none: a warp factor, "auto"
    # (uploads; streams take 1) or a warp ensemble's factors (W encoder rows
    # per stream, W times the compute)
    vtln: float | str | tuple[float, ...] = 1.0
    # endpoint rescoring of the finals of sessions that name none (those
    # with endpointing): each closed segment encoded again offline
    rescore: bool = True
    threads: int = 1  # torch intra-op threads (ONNX: $SPEECH_ONNX_THREADS)

    # limits
    max_sessions: int = 200  # concurrent WebSocket sessions and HTTP requests
    max_frame_bytes: int = 1 << 20  # one WebSocket message
    max_text_chars: int = 4096  # one synthesis request
    max_upload_bytes: int = 25 << 20  # one transcription upload
    idle_timeout: float = 60.0  # seconds without a client message
    max_session_seconds: float = 3600.0  # wall-clock length of a session
    max_backlog_seconds: float = 20.0  # ASR audio received but not yet decoded
    max_queued_requests: int = 16  # TTS requests waiting on one connection
    max_outbox_bytes: int = 4 << 20  # unsent output of one session
    send_timeout: float = 20.0  # one send may wait this long for a slow reader

    # security
    token: str | None = None  # required bearer token
    allowed_origins: tuple[str, ...] = ()  # besides same-origin; "*": any

    # batching
    batch_wait: float = 0.005  # seconds to gather more work before a step
    max_asr_batch: int = 64  # streams per encoder step
    max_tts_batch: int = 32  # streams per decoder/vocoder step
    passes_per_step: int = 2  # ASR chunks one stream may advance per step
    # endpoint rescoring: audio of the segments encoded again per pass, in
    # one masked batch after the streaming steps (at least one segment);
    # the rest waits for the next pass, so partials keep their pace
    max_rescore_seconds: float = 30.0

    # operations
    shutdown_timeout: float = 15.0  # seconds to finish in-flight results
    trim_interval: float = 10.0  # seconds between malloc_trim calls (0: never)
    log_format: Literal["json", "text"] = "json"
    demo: bool = True  # serve the browser demo at /

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.max_frame_bytes < 1024:
            raise ValueError("max_frame_bytes must be at least 1024")
        if self.max_rescore_seconds <= 0:
            raise ValueError("max_rescore_seconds must be positive")
        for name in ("idle_timeout", "max_session_seconds", "send_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def transport_max_bytes(self) -> int:
        """The WebSocket layer's own limit: above ours, so that an oversized
        frame reaches the app and gets a JSON error before the close."""
        return max(4 * self.max_frame_bytes, self.max_frame_bytes + (1 << 20))

    def replace(self, **changes: Any) -> ServerConfig:
        return replace(self, **changes)

    @classmethod
    def from_args(cls, args: Any) -> ServerConfig:
        """From the ``speech serve`` namespace (missing flags keep defaults)."""
        names = {
            "asr": "asr",
            "tts": "tts",
            "max_backlog_seconds": "max_backlog_seconds",
            "host": "host",
            "port": "port",
            "asr_model": "asr_model",
            "tts_model": "tts_model",
            "backend": "backend",
            "device": "device",
            "vtln": "vtln",
            "rescore": "rescore",
            "max_rescore_seconds": "max_rescore_seconds",
            "threads": "threads",
            "max_sessions": "max_sessions",
            "max_frame_bytes": "max_frame_bytes",
            "max_text_chars": "max_text_chars",
            "idle_timeout": "idle_timeout",
            "max_session_seconds": "max_session_seconds",
            "token": "token",
            "batch_wait": "batch_wait",
            "log_format": "log_format",
        }
        values: dict[str, Any] = {}
        for attribute, field_name in names.items():
            value = getattr(args, attribute, None)
            if value is not None:
                values[field_name] = value
        origins = getattr(args, "allowed_origin", None) or []
        values["allowed_origins"] = tuple(origins)
        if values.get("backend") == "auto":
            values["backend"] = choose_backend(
                values.get("asr_model"),
                values.get("tts_model"),
                values.get("device", cls.device),
                values.get("asr", cls.asr),
                values.get("tts", cls.tts),
            )
        if values.get("threads") is None:
            values["threads"] = default_threads()
        return cls(**values)


def default_threads() -> int:
    """All the cores: ``speech serve`` makes idle OpenMP threads sleep
    (``OMP_WAIT_POLICY=PASSIVE``), so the ASR and TTS workers can share them."""
    return max(1, os.cpu_count() or 1)
