"""Streaming synthesis over the /tts WebSocket: the audio equals the library's
synthesis, events frame it (start, chunk offsets, done), several requests
share a connection, cancel stops the current one, and concurrent requests
are batched without mixing their audio."""

from __future__ import annotations

import asyncio

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


def test_concurrent_requests_are_batched_and_separate(serve, server_models) -> None:
    server = serve(batch_wait=0.02)
    synthesizer = server_models[1]

    async def one(text: str):
        async with TtsClient(server.ws_url("/tts")) as tts:
            return await collect(tts, text)

    async def run_all():
        return await asyncio.gather(*(one(t) for t in TEXTS))

    outputs = asyncio.run(run_all())
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
