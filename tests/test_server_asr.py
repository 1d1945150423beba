"""Streaming recognition over the /asr WebSocket: results equal the library's
stream, results have the documented shape, concurrent streams are batched
and each still gets its own result."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf
import soxr

from server.client import AsrClient, stream_audio


@pytest.fixture(scope="module")
def speech_16k(speech_file) -> np.ndarray:
    samples, rate = sf.read(speech_file, dtype="int16")
    assert rate == 16000
    return samples


def library_finals(recognizer, samples: np.ndarray, rate: int = 16000, **options):
    """The library stream's finals, with the server's default: endpoint
    rescoring wherever there is endpointing."""
    if options.get("endpoint_rules", ()) is not None:
        options.setdefault("rescore", True)
    stream = recognizer.stream(input_sample_rate=rate, **options)
    events = []
    for start in range(0, len(samples), 1600):
        events += stream.accept_waveform(samples[start : start + 1600])
    events += stream.finish()
    return [e.segment.text for e in events if e.kind == "final" and e.segment.text]


def server_finals(results) -> list[str]:
    return [r["text"] for r in results if r["type"] == "final" and r["text"]]


def concurrent_finals(server, inputs, options=None) -> list[list[str]]:
    """The finals of one session per input, all streamed at once (``options``:
    each session's, default none)."""
    options = options or [None] * len(inputs)

    async def run_all():
        return await asyncio.gather(
            *(
                stream_audio(x, 16000, server.ws_url("/asr"), realtime=False, options=o)
                for x, o in zip(inputs, options, strict=True)
            )
        )

    return [server_finals(r) for r in asyncio.run(run_all())]


def mean_asr_batch(server) -> float:
    """Sessions per batched encoder step so far (the server's metric)."""
    batches = server.hub.metrics.asr_batch.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    total = next(s.value for s in batches if s.name.endswith("_sum"))
    return total / count


def test_results_equal_library_stream(serve, server_models, speech_16k) -> None:
    server = serve()
    recognizer = server_models[0]
    floats = speech_16k.astype(np.float32) / 32768.0
    expected = library_finals(recognizer, floats)
    assert expected
    # odd frame sizes: the server re-chunks whatever arrives
    results = asyncio.run(
        stream_audio(floats, 16000, server.ws_url("/asr"), frame_seconds=0.0371)
    )
    assert server_finals(results) == expected
    assert results[-1]["type"] == "final" and results[-1]["last"] is True
    assert sum(1 for r in results if r.get("last")) == 1
    # a session without endpoint rescoring gets the streaming pass's finals
    plain = asyncio.run(
        stream_audio(floats, 16000, server.ws_url("/asr"), options={"rescore": False})
    )
    first_pass = library_finals(recognizer, floats, rescore=False)
    assert server_finals(plain) == first_pass != expected
    # and a server without it, unless a session asks
    server = serve(rescore=False)
    for options, finals in ((None, first_pass), ({"rescore": True}, expected)):
        results = asyncio.run(
            stream_audio(floats, 16000, server.ws_url("/asr"), options=options)
        )
        assert server_finals(results) == finals


def test_message_shape(serve, speech_16k) -> None:
    server = serve()
    floats = speech_16k[: 3 * 16000].astype(np.float32) / 32768.0
    # at real-time pace: partials come while audio arrives (after 'end' only
    # finals are sent)
    results = asyncio.run(
        stream_audio(floats, 16000, server.ws_url("/asr"), realtime=True)
    )
    partials = [r for r in results if r["type"] == "partial"]
    finals = [r for r in results if r["type"] == "final"]
    assert partials and finals
    duration = len(floats) / 16000
    processed = [r["processed"] for r in results]
    assert processed == sorted(processed) and processed[-1] <= duration + 1e-3
    for result in results:
        assert set(result) >= {"type", "segment", "text", "start", "end", "words"}
        assert result["text"] == " ".join(w["word"] for w in result["words"])
        for word in result["words"]:
            assert 0 <= word["start"] <= word["end"] <= duration + 0.1
    segments = [r["segment"] for r in finals]
    assert segments == list(range(len(finals)))  # one final per segment


def test_f32le_at_48k_is_resampled(serve, server_models, speech_16k) -> None:
    server = serve()
    floats = speech_16k.astype(np.float32) / 32768.0
    high = soxr.resample(floats, 16000, 48000).astype(np.float32)
    results = asyncio.run(
        stream_audio(high, 48000, server.ws_url("/asr"), format="f32le")
    )
    expected = library_finals(server_models[0], high, rate=48000)
    assert server_finals(results) == expected and expected


def test_options(serve, server_models, speech_16k) -> None:
    server = serve()
    floats = speech_16k.astype(np.float32) / 32768.0
    quiet = asyncio.run(
        stream_audio(
            floats,
            16000,
            server.ws_url("/asr"),
            options={"partials": False, "endpointing": False, "beam_size": 3},
        )
    )
    assert all(r["type"] == "final" for r in quiet)
    assert len(quiet) == 1 and quiet[0]["last"]
    expected = library_finals(
        server_models[0], floats, endpoint_rules=None, beam_size=3
    )
    assert [quiet[0]["text"]] == expected
    # a session's own VTLN warp: the library's stream with the same warp
    warped = asyncio.run(
        stream_audio(floats, 16000, server.ws_url("/asr"), options={"vtln": 1.2})
    )
    expected = library_finals(server_models[0], floats, vtln=1.2)
    assert server_finals(warped) == expected and expected


def test_concurrent_streams_are_batched_and_separate(
    serve, server_models, speech_16k
) -> None:
    server = serve(batch_wait=0.02)
    recognizer = server_models[0]
    floats = speech_16k.astype(np.float32) / 32768.0
    # different audio per stream: shifted starts
    inputs = [floats[i * 2400 :] for i in range(6)]
    expected = [library_finals(recognizer, x) for x in inputs]
    assert concurrent_finals(server, inputs) == expected
    assert mean_asr_batch(server) > 1.5  # steps ran several streams at once


def test_rescoring_keeps_each_sessions_order(serve, server_models, speech_16k):
    """Endpoint rescoring runs after the streaming steps, at most
    ``max_rescore_seconds`` of segments per pass (here one segment each):
    a session's events behind a final awaiting its second pass wait for
    it, so every session still gets the library's finals, in order, and
    no partial of a segment after its final."""
    server = serve(batch_wait=0.02, max_rescore_seconds=0.1)
    recognizer = server_models[0]
    # 31 s: the 20 s rule closes a segment mid-stream, the end another
    floats = np.tile(speech_16k.astype(np.float32) / 32768.0, 3)
    inputs = [floats[i * 2400 :] for i in range(4)]
    expected = [library_finals(recognizer, x) for x in inputs]
    assert all(len(finals) == 2 for finals in expected)

    async def run_all():
        return await asyncio.gather(
            *(stream_audio(x, 16000, server.ws_url("/asr")) for x in inputs)
        )

    outputs = asyncio.run(run_all())
    assert [server_finals(r) for r in outputs] == expected
    for results in outputs:
        closed = 0
        for result in results:
            assert result["segment"] == closed, results
            closed += result["type"] == "final"
    rescored = server.hub.metrics.asr_rescore_seconds.collect()[0].samples
    batches = next(s.value for s in rescored if s.name.endswith("_count"))
    assert batches == 8  # one segment per pass, as the budget allows


def test_warp_ensemble_sessions_batch_with_plain_ones(
    serve, server_models, speech_16k
) -> None:
    """A session's warp ensemble (``vtln`` as a list) runs its encoder rows
    (one per warp) in the same batched steps as one-row sessions: each session's
    finals are the library stream's with the same setting (the streaming
    pass's: rescoring off, as the tiny model's rescored text does not move
    with these warps)."""
    server = serve(batch_wait=0.05)
    recognizer = server_models[0]
    floats = speech_16k.astype(np.float32) / 32768.0
    warps = [1.2, 1.5]  # the tiny model's text moves with these
    inputs = [floats[i * 2400 :] for i in range(4)]
    settings = [warps, None, warps, 1.5]
    expected = [
        library_finals(
            recognizer, x, vtln=tuple(v) if isinstance(v, list) else v, rescore=False
        )
        for x, v in zip(inputs, settings, strict=True)
    ]
    # the ensemble's text is neither the plain one nor its member 1.5's
    assert expected[0] != library_finals(recognizer, inputs[0], rescore=False)
    assert expected[0] != library_finals(recognizer, inputs[0], vtln=1.5, rescore=False)
    options = [
        {"rescore": False} | ({} if v is None else {"vtln": v}) for v in settings
    ]
    assert concurrent_finals(server, inputs, options) == expected
    assert mean_asr_batch(server) > 1.5  # steps ran several sessions at once


def test_started_message(serve) -> None:
    server = serve()

    async def run():
        async with AsrClient(server.ws_url("/asr"), sample_rate=22050) as asr:
            info = asr.info
            await asr.end()
            results = [r async for r in asr.results()]
        return info, results

    info, results = asyncio.run(run())
    assert info["type"] == "started" and info["sample_rate"] == 22050
    assert info["model_sample_rate"] == 16000 and info["chunk_seconds"] > 0
    assert info["rescore"] is True  # the server's default
    # no audio: one empty last final
    assert results == [
        {
            "type": "final",
            "segment": 0,
            "text": "",
            "start": 0.0,
            "end": 0.0,
            "words": [],
            "processed": 0.0,
            "last": True,
        }
    ]
