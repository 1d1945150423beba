"""A bounded load test (the full one is ``benchmarks/server_load.py``):
concurrent real-time ASR sessions and TTS sessions on the tiny models, all
served, with bounded latency and no errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf

from benchmarks.server_load import asr_load, tts_load
from tests.server_util import wait_until

pytestmark = pytest.mark.slow


def test_concurrent_realtime_asr_sessions(serve, speech_file) -> None:
    server = serve()
    samples, _ = sf.read(speech_file, dtype="int16")
    audio = np.tile(samples, 2)
    report = asyncio.run(
        asr_load(server.ws_url("/asr"), audio, sessions=12, seconds=4.0, warmup=1.0)
    )
    assert not report.errors
    assert report.completed == 12  # every session got its last final
    assert report.results >= 12  # timed results flowed
    # generous for a shared CI machine; the benchmark measures the real figure
    assert report.p95_ms < 1000, report
    assert wait_until(lambda: not server.hub.sessions)
    assert server.hub.asr_batcher.slots == []


def test_concurrent_tts_sessions(serve) -> None:
    server = serve()
    report = asyncio.run(tts_load(server.ws_url("/tts"), sessions=6, seconds=2.0))
    assert not report.errors
    assert report.requests >= 6
    assert report.p95_ms < 1000, report
