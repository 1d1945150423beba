"""Prometheus metrics of one server (its own registry, so several apps can
live in one process, as in the tests).

Real-time factor: ``*_compute_seconds_total / *_audio_seconds_total`` over
any window (e.g. ``rate(a[1m]) / rate(b[1m])`` in PromQL); the gauges
``speech_*_real_time_factor`` give the same over the last ~30 s of work.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Latency buckets (seconds) around the 300 ms target.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _RecentRatio:
    """compute / audio over a sliding time window (for the RTF gauges)."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self.items: deque[tuple[float, float, float]] = deque()
        self.compute = 0.0
        self.audio = 0.0

    def add(self, compute: float, audio: float) -> float:
        now = time.monotonic()
        self.items.append((now, compute, audio))
        self.compute += compute
        self.audio += audio
        while self.items and self.items[0][0] < now - self.window:
            _, old_compute, old_audio = self.items.popleft()
            self.compute -= old_compute
            self.audio -= old_audio
        return self.compute / self.audio if self.audio > 1e-9 else 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge(
            "speech_sessions_active",
            "Open WebSocket sessions",
            ["kind"],
            registry=r,
        )
        self.sessions_total = Counter(
            "speech_sessions_total", "WebSocket sessions accepted", ["kind"], registry=r
        )
        self.refusals_total = Counter(
            "speech_errors_total",
            "JSON errors sent (WebSocket closes and HTTP refusals), by code",
            ["code"],
            registry=r,
        )
        self.http_requests_total = Counter(
            "speech_http_requests_total",
            "HTTP API requests",
            ["endpoint", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "speech_http_request_seconds",
            "HTTP API request time",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # ASR
        self.asr_latency = Histogram(
            "speech_asr_result_latency_seconds",
            "From the arrival of the audio that completed a chunk to its result",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.asr_batch = Histogram(
            "speech_asr_batch_streams",
            "Streams per batched encoder step",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.asr_step_seconds = Histogram(
            "speech_asr_step_seconds",
            "Time of one batched step (features, encoder, decoding)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.asr_rescore_seconds = Histogram(
            "speech_asr_rescore_audio_seconds",
            "Audio of the segments in one batched second pass (endpoint rescoring)",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120),
            registry=r,
        )
        self.asr_audio_seconds = Counter(
            "speech_asr_audio_seconds_total", "Audio decoded", registry=r
        )
        self.asr_compute_seconds = Counter(
            "speech_asr_compute_seconds_total", "Model worker busy time", registry=r
        )
        self.asr_rtf = Gauge(
            "speech_asr_real_time_factor",
            "ASR compute time per audio second, last ~30 s",
            registry=r,
        )
        # TTS
        self.tts_first_audio = Histogram(
            "speech_tts_first_audio_seconds",
            "From a synthesis request to its first audio",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tts_batch = Histogram(
            "speech_tts_batch_streams",
            "Requests per batched decoder/vocoder step",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.tts_audio_seconds = Counter(
            "speech_tts_audio_seconds_total", "Audio synthesized", registry=r
        )
        self.tts_compute_seconds = Counter(
            "speech_tts_compute_seconds_total", "Model worker busy time", registry=r
        )
        self.tts_rtf = Gauge(
            "speech_tts_real_time_factor",
            "TTS compute time per audio second, last ~30 s",
            registry=r,
        )
        self._asr_recent = _RecentRatio()
        self._tts_recent = _RecentRatio()

    def asr_work(self, compute: float, audio: float) -> None:
        self.asr_compute_seconds.inc(compute)
        self.asr_audio_seconds.inc(audio)
        self.asr_rtf.set(self._asr_recent.add(compute, audio))

    def tts_work(self, compute: float, audio: float) -> None:
        self.tts_compute_seconds.inc(compute)
        self.tts_audio_seconds.inc(audio)
        self.tts_rtf.set(self._tts_recent.add(compute, audio))

    def render(self) -> bytes:
        return generate_latest(self.registry)
