"""Streaming synthesis over the /tts WebSocket: the audio equals the library's
synthesis, events frame it (start, chunk offsets, done), several requests
share a connection, cancel stops the current one, and concurrent requests
are batched without mixing their audio; the same on the ONNX Runtime back
end (``backend="onnx"``), which serves without torch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from server.client import TtsClient, from_pcm

TEXTS = [
    "Hello there. How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "One, two, three.",
    "She sells sea shells by the sea shore, and the shells she sells are surely "
    "sea shells.",
]


async def collect(tts: TtsClient, text: str, **options):
    chunks = [c async for c in tts.synthesize(text, **options)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def test_audio_equals_library(serve, server_models) -> None:
    server = serve()
    synthesizer = server_models[1]

    async def run():
        async with TtsClient(server.ws_url("/tts")) as tts:
            audio = await collect(tts, TEXTS[0], pace=1.3, pitch=2.0, volume=0.8)
            return audio, tts.events, tts.sample_rate

    audio, events, rate = asyncio.run(run())
    expected = synthesizer.synthesize(TEXTS[0], pace=1.3, pitch_shift=2.0, volume=0.8)
    assert rate == synthesizer.sample_rate
    assert audio.shape == expected.shape
    np.testing.assert_allclose(audio, expected, atol=2e-5)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "chunk" in kinds
    offsets = [(e["offset"], e["samples"]) for e in events if e["type"] == "chunk"]
    position = 0
    for offset, samples in offsets:
        assert offset == position
        position += samples
    assert events[-1]["samples"] == position == len(expected)
    assert events[-1]["cancelled"] is False


def test_s16le_and_first_chunk_before_the_end(serve, server_models) -> None:
    server = serve()
    synthesizer = server_models[1]
    text = " ".join(TEXTS)

    async def run():
        async with TtsClient(server.ws_url("/tts")) as tts:
            await tts.request(text, format="s16le")
            chunks = []
            async for event, audio in tts.receive():
                if audio is not None:
                    chunks.append(from_pcm(audio, "s16le"))
                if event["type"] == "done":
                    return chunks

    chunks = asyncio.run(run())
    assert len(chunks) > 4  # streamed in many pieces, not one
    expected = synthesizer.synthesize(text)
    np.testing.assert_allclose(np.concatenate(chunks), expected, atol=1 / 32768 + 2e-5)


def test_several_requests_and_cancel(serve) -> None:
    server = serve()
    long_text = " ".join(TEXTS * 3)

    async def run():
        async with TtsClient(server.ws_url("/tts")) as tts:
            await tts.request(long_text, id="long")
            await tts.request(TEXTS[2], id="short")
            events = []
            async for event, _audio in tts.receive():
                events.append(event)
                if event["type"] == "chunk" and event["id"] == "long":
                    if sum(e["type"] == "chunk" for e in events) == 2:
                        await tts.cancel()
                if event["type"] == "done" and event["id"] == "short":
                    return events

    events = asyncio.run(run())
    done = {e["id"]: e for e in events if e["type"] == "done"}
    assert done["long"]["cancelled"] is True
    assert done["short"]["cancelled"] is False and done["short"]["samples"] > 0
    starts = [e["id"] for e in events if e["type"] == "start"]
    assert starts == ["long", "short"]
    # nothing of the cancelled request after its done
    after = events[events.index(done["long"]) + 1 :]
    assert all(e.get("id") != "long" for e in after)


def _request_concurrently(server, texts: list[str]) -> list[np.ndarray]:
    """Each text on a connection of its own, all at once; their audio."""

    async def one(text: str) -> np.ndarray:
        async with TtsClient(server.ws_url("/tts")) as tts:
            return await collect(tts, text)

    async def run_all() -> list[np.ndarray]:
        return await asyncio.gather(*(one(t) for t in texts))

    return asyncio.run(run_all())


def test_concurrent_requests_are_batched_and_separate(serve, server_models) -> None:
    server = serve(batch_wait=0.02)
    synthesizer = server_models[1]
    outputs = _request_concurrently(server, TEXTS)
    for text, audio in zip(TEXTS, outputs, strict=True):
        np.testing.assert_allclose(audio, synthesizer.synthesize(text), atol=2e-5)
    batches = server.hub.metrics.tts_batch.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    total = next(s.value for s in batches if s.name.endswith("_sum"))
    assert total / count > 1.5


def test_voice_aliases(serve) -> None:
    server = serve()

    async def run():
        async with TtsClient(server.ws_url("/tts")) as tts:
            return [len(await collect(tts, "Hi.", voice=v)) for v in VOICES]

    VOICES = ("default", "tiny", "alloy")  # the folder's name, an OpenAI name
    lengths = asyncio.run(run())
    assert lengths[0] > 0 and len(set(lengths)) == 1


@pytest.mark.parametrize("text", ["\U0001f600 \u4e2d\u6587", "..."])
def test_nothing_speakable_gives_empty_done(serve, text) -> None:
    server = serve()

    async def run():
        async with TtsClient(server.ws_url("/tts")) as tts:
            audio = await collect(tts, text)
            return audio, tts.last_done

    audio, done = asyncio.run(run())
    assert len(audio) == 0 and done["samples"] == 0


# ---------------------------------------------------- ONNX Runtime back end


@pytest.fixture(scope="module")
def onnx_voice(tmp_path_factory, tts_dir) -> Path:
    """The tiny voice exported to ONNX (the layout of ``speech export onnx``)."""
    from export.onnx_export import export_tts

    out = tmp_path_factory.mktemp("onnx_voice")
    export_tts(tts_dir, out / "tts", check=False)
    return out


@pytest.fixture
def serve_onnx(onnx_voice):
    """``serve_onnx(**config)``: a running server that loads its synthesizer
    itself (``load_models``) with ``backend="onnx"``; stopped afterwards."""
    from server.app import BackgroundServer, create_app
    from server.config import ServerConfig

    servers = []

    def start(**changes):
        config = ServerConfig(
            threads=1, asr=False, backend="onnx", tts_model=str(onnx_voice), **changes
        )
        server = BackgroundServer(create_app(config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _close(audio: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding, relative to the output's scale."""
    assert audio.shape == expected.shape and np.abs(expected).max() > 0
    np.testing.assert_allclose(
        audio, expected, rtol=0, atol=1e-6 * np.abs(expected).max()
    )


def test_onnx_backend_audio_equals_library(serve_onnx, onnx_voice) -> None:
    from speech.onnx.tts import OnnxSynthesizer

    server = serve_onnx()
    assert isinstance(server.hub.synthesizer, OnnxSynthesizer)
    assert server.hub.health()["tts"]["backend"] == "onnx"
    options = dict(pace=1.3, pitch=2.0, volume=0.8)

    async def run():
        async with TtsClient(server.ws_url("/tts")) as tts:
            return await collect(tts, TEXTS[0], **options), tts.events

    audio, events = asyncio.run(run())
    synthesizer = OnnxSynthesizer(onnx_voice)
    controls = dict(pace=1.3, pitch_shift=2.0, volume=0.8)
    _close(audio, synthesizer.synthesize(TEXTS[0], **controls))
    _close(audio, np.concatenate(list(synthesizer.stream(TEXTS[0], **controls))))
    assert events[0]["sample_rate"] == synthesizer.sample_rate
    assert sum(e["type"] == "chunk" for e in events) > 2  # streamed, not whole
    assert events[-1]["samples"] == len(audio)


def test_onnx_backend_batches_concurrent_requests(serve_onnx, onnx_voice) -> None:
    from speech.onnx.tts import OnnxSynthesizer

    server = serve_onnx(batch_wait=0.02)
    outputs = _request_concurrently(server, TEXTS)
    synthesizer = OnnxSynthesizer(onnx_voice)
    for text, audio in zip(TEXTS, outputs, strict=True):  # each as if alone
        _close(audio, np.concatenate(list(synthesizer.stream(text))))
    batches = server.hub.metrics.tts_batch.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    alone = next(
        s.value
        for s in batches
        if s.name.endswith("_bucket") and float(s.labels["le"]) == 1.0
    )
    assert alone < count  # some steps ran several requests together


def test_onnx_backend_default_folder_and_missing_export(
    onnx_voice, tmp_path, monkeypatch
) -> None:
    import speech.onnx
    from server.app import load_models
    from server.config import ServerConfig
    from speech.onnx.tts import OnnxSynthesizer
    from tests.test_onnx_backend import _env_without_torch

    config = ServerConfig(asr=False, backend="onnx")
    # no --tts-model: the shipped export folder
    monkeypatch.setattr(speech.onnx, "DEFAULT_ONNX_DIR", onnx_voice)
    _, synthesizer, voice = load_models(config)
    assert isinstance(synthesizer, OnnxSynthesizer) and voice == "default"
    assert synthesizer.folder == onnx_voice / "tts"
    missing = tmp_path / "not_exported"
    monkeypatch.setattr(speech.onnx, "DEFAULT_ONNX_DIR", missing)
    with pytest.raises(FileNotFoundError, match="speech export onnx"):
        load_models(config)
    done = subprocess.run(
        [sys.executable, "-m", "speech.cli", "serve", "--backend", "onnx",
         "--no-asr", "--tts-model", str(missing)],
        env=_env_without_torch(tmp_path), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("speech serve: cannot load the models:")
    assert str(missing) in done.stderr


SERVE_WITHOUT_TORCH = """
import asyncio, sys
import numpy as np
from server.app import BackgroundServer, create_app
from server.client import TtsClient
from server.config import ServerConfig

async def fetch(url):
    async with TtsClient(url) as tts:
        return np.concatenate([c async for c in tts.synthesize(sys.argv[2])])

config = ServerConfig(asr=False, backend="onnx", tts_model=sys.argv[1])
with BackgroundServer(create_app(config)) as server:
    audio = asyncio.run(fetch(server.ws_url("/tts")))
assert "torch" not in sys.modules
np.save(sys.argv[3], audio)
"""


def test_onnx_backend_serves_without_torch(onnx_voice, tmp_path) -> None:
    from speech.onnx.tts import OnnxSynthesizer
    from tests.test_onnx_backend import _env_without_torch

    out = tmp_path / "audio.npy"
    text = "Hello world. Fine, thanks!"
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_TORCH, str(onnx_voice), text, str(out)],
        env=_env_without_torch(tmp_path), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = np.concatenate(list(OnnxSynthesizer(onnx_voice).stream(text)))
    _close(np.load(out), expected)
