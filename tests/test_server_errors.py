"""Bad input and hostile clients: each gets a JSON error and the documented
close code, for that client only; other sessions go on; nothing leaks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server.app import BackgroundServer, create_app
from server.client import AsrClient, TtsClient, stream_audio
from server.config import ServerConfig
from server.protocol import ERRORS
from tests.server_util import errors, exchange, live_objects, server_tasks, wait_until

MAX_FRAME = 8192
MAX_TEXT = 300
START = {"type": "start", "sample_rate": 16000, "format": "s16le"}
SYNTH = {"type": "synthesize", "text": "Hello."}

ASR_CASES = {
    "malformed_json": (["{not json"], "bad_json"),
    "not_an_object": (["[1, 2]"], "bad_message"),
    "unknown_type": ([{"type": "hello"}], "unknown_type"),
    "audio_before_start": ([b"\x00\x00" * 10], "not_started"),
    "end_before_start": ([{"type": "end"}], "not_started"),
    "second_start": ([START, START], "already_started"),
    "sample_rate_string": ([{**START, "sample_rate": "16000"}], "bad_sample_rate"),
    "sample_rate_low": ([{**START, "sample_rate": 100}], "bad_sample_rate"),
    "sample_rate_missing": ([{"type": "start"}], "bad_sample_rate"),
    "format_value": ([{**START, "format": "mp3"}], "bad_format"),
    "bad_option_value": ([{**START, "options": {"beam_size": 0}}], "bad_option"),
    "unknown_option": ([{**START, "options": {"speed": 2}}], "bad_option"),
    "bad_vtln": ([{**START, "options": {"vtln": 5}}], "bad_option"),
    "bad_vtln_ensemble": ([{**START, "options": {"vtln": [0.9, 0.9]}}], "bad_option"),
    "bad_rescore": ([{**START, "options": {"rescore": "yes"}}], "bad_option"),
    "rescore_without_endpoints": (
        [{**START, "options": {"rescore": True, "endpointing": False}}],
        "bad_option",
    ),
    "odd_bytes_s16": ([START, b"\x00" * 3], "bad_frame"),
    "odd_bytes_f32": ([{**START, "format": "f32le"}, b"\x00" * 6], "bad_frame"),
    "oversized_frame": ([START, b"\x00" * (MAX_FRAME + 2)], "frame_too_large"),
    "oversized_text": (["x" * (MAX_FRAME + 1)], "frame_too_large"),
}
TTS_CASES = {
    "malformed_json": (['{"type": "synthesize",'], "bad_json"),
    "unknown_type": ([{"type": "speak"}], "unknown_type"),
    "binary": ([b"\x00\x01"], "unexpected_binary"),
    "empty_text": ([{**SYNTH, "text": "  "}], "bad_text"),
    "text_not_string": ([{**SYNTH, "text": 5}], "bad_text"),
    "over_long_text": ([{**SYNTH, "text": "a" * (MAX_TEXT + 1)}], "text_too_long"),
    "pace_zero": ([{**SYNTH, "pace": 0}], "bad_option"),
    "pace_string": ([{**SYNTH, "pace": "fast"}], "bad_option"),
    "format_value": ([{**SYNTH, "format": "mp3"}], "bad_format"),
    "unknown_voice": ([{**SYNTH, "voice": "nobody"}], "unknown_voice"),
    "unknown_field": ([{**SYNTH, "ssml": "<speak/>"}], "bad_option"),
    "too_many_requests": ([SYNTH] * 20, "too_many_requests"),
}


@pytest.fixture(scope="module")
def limited(server_models):
    recognizer, synthesizer = server_models
    config = ServerConfig(
        threads=1,
        max_frame_bytes=MAX_FRAME,
        max_text_chars=MAX_TEXT,
        max_queued_requests=4,
        send_timeout=2.0,
    )
    with BackgroundServer(create_app(config, recognizer, synthesizer)) as server:
        yield server


def check_refusal(received, close_code, code) -> None:
    found = errors(received)
    assert len(found) == 1, received
    assert found[0]["code"] == code and found[0]["message"]
    assert received[-1] == found[0]  # the error is the last message
    assert close_code == ERRORS[code][0]


@pytest.mark.parametrize("case", sorted(ASR_CASES))
def test_asr_bad_input(limited, case) -> None:
    messages, code = ASR_CASES[case]
    received, close_code = asyncio.run(exchange(limited.ws_url("/asr"), messages))
    check_refusal(received, close_code, code)


@pytest.mark.parametrize("case", sorted(TTS_CASES))
def test_tts_bad_input(limited, case) -> None:
    messages, code = TTS_CASES[case]
    received, close_code = asyncio.run(exchange(limited.ws_url("/tts"), messages))
    check_refusal(received, close_code, code)


def test_every_error_code_is_documented() -> None:
    text = (Path(__file__).parent.parent / "server" / "PROTOCOL.md").read_text()
    for code, (_close_code, _status, _) in ERRORS.items():
        assert f"`{code}`" in text, code


# ----------------------------------------------------- others go on unaffected


def _raw_websocket(port: int, path: str, receive_buffer: int = 4096) -> socket.socket:
    """A WebSocket client that does the handshake, then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response.split(b"\r\n")[0]
    return sock


def _send_text(sock: socket.socket, text: str) -> None:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


@pytest.mark.slow
def test_hostile_clients_do_not_disturb_others(serve, server_models, speech_file):
    """A client that never reads, clients that vanish mid-stream and bad
    clients, all while a live ASR stream and a TTS session run."""
    server = serve(send_timeout=1.0, max_text_chars=4096)
    recognizer, synthesizer = server_models
    samples, _ = sf.read(speech_file, dtype="float32", frames=5 * 16000)
    samples = (np.round(samples * 32768).clip(-32768, 32767) / 32768).astype(np.float32)
    stream = recognizer.stream(rescore=True)  # the server's default
    events = []
    for start in range(0, len(samples), 1600):
        events += stream.accept_waveform(samples[start : start + 1600])
    events += stream.finish()
    reference = [e.segment.text for e in events if e.kind == "final" and e.segment.text]
    tts_text = "The quick brown fox jumps over the lazy dog. " * 3
    tts_reference = synthesizer.synthesize(tts_text)
    long_text = "Some words to say, over and over again. " * 100

    async def bystander_asr():
        results = await stream_audio(
            samples, 16000, server.ws_url("/asr"), realtime=True, frame_seconds=0.2
        )
        return [r["text"] for r in results if r["type"] == "final" and r["text"]]

    async def bystander_tts():
        outputs = []
        async with TtsClient(server.ws_url("/tts")) as tts:
            for _ in range(3):
                chunks = [c async for c in tts.synthesize(tts_text)]
                outputs.append(np.concatenate(chunks))
                await asyncio.sleep(0.5)
        return outputs

    async def never_reads():
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(None, _raw_websocket, server.port, "/tts")
        for _ in range(3):
            _send_text(
                sock,
                json.dumps(
                    {"type": "synthesize", "text": long_text, "format": "f32le"}
                ),
            )
        assert await loop.run_in_executor(
            None,
            wait_until,
            lambda: (
                server.hub.metrics.refusals_total.labels("slow_consumer")._value.get()
                >= 1
            ),
            15.0,
        )
        sock.close()

    async def vanishes_asr():
        async with AsrClient(server.ws_url("/asr")) as asr:
            await asr.send(samples[:48000])
            await asyncio.sleep(0.3)
            asr.ws.transport.abort()

    async def vanishes_tts():
        async with TtsClient(server.ws_url("/tts")) as tts:
            await tts.request(long_text)
            await asyncio.sleep(0.3)
            tts.ws.transport.abort()

    async def bad_clients():
        asr = ("malformed_json", "audio_before_start", "odd_bytes_s16", "format_value")
        tts = ("malformed_json", "binary", "empty_text", "unknown_voice")
        for name in asr:
            received, _ = await exchange(server.ws_url("/asr"), ASR_CASES[name][0])
            assert errors(received)[0]["code"] == ASR_CASES[name][1]
        for name in tts:
            received, _ = await exchange(server.ws_url("/tts"), TTS_CASES[name][0])
            assert errors(received)[0]["code"] == TTS_CASES[name][1]

    async def run_all():
        return await asyncio.gather(
            bystander_asr(),
            bystander_tts(),
            never_reads(),
            vanishes_asr(),
            vanishes_tts(),
            bad_clients(),
        )

    baseline = server_tasks(server)
    results = asyncio.run(run_all())
    assert results[0] == reference
    for audio in results[1]:
        np.testing.assert_allclose(audio, tts_reference, atol=2e-5)

    # everything is cleaned up
    hub = server.hub
    assert wait_until(lambda: not hub.sessions and hub.http_active == 0)
    assert wait_until(lambda: not hub.asr_batcher.slots and not hub.tts_batcher.jobs)
    assert wait_until(lambda: server_tasks(server) == baseline), (
        server_tasks(server) - baseline
    )
    from server.asr import _AsrSession
    from server.session import WsSession
    from server.tts import _TtsSession

    assert live_objects(WsSession, _AsrSession, _TtsSession) == 0


def test_disconnect_mid_stream_frees_the_session(serve, speech_file) -> None:
    server = serve()
    samples, _ = sf.read(speech_file, dtype="float32")

    async def run():
        async with AsrClient(server.ws_url("/asr")) as asr:
            await asr.send(samples[:32000])
            await asyncio.sleep(0.2)
        # closed without 'end': normal close from the client side

    asyncio.run(run())
    assert wait_until(lambda: not server.hub.sessions)
    assert not server.hub.asr_batcher.slots


# ---------------------------------------------------------------- the limits


def test_idle_timeout_gives_last_final_then_error(serve, speech_file) -> None:
    server = serve(idle_timeout=0.6)
    samples, _ = sf.read(speech_file, dtype="int16")
    received, code = asyncio.run(
        exchange(server.ws_url("/asr"), [START, samples[:32000].tobytes()])
    )
    assert errors(received)[0]["code"] == "idle_timeout" and code == 1008
    finals = [m for m in received if m.get("type") == "final"]
    assert finals and finals[-1]["last"] is True


def test_session_length_limit(serve, speech_file) -> None:
    server = serve(max_session_seconds=1.0)
    samples, _ = sf.read(speech_file, dtype="float32")

    async def run():
        try:
            await stream_audio(samples, 16000, server.ws_url("/asr"), realtime=True)
        except Exception as error:  # ServerError
            return error
        return None

    error = asyncio.run(run())
    assert error is not None and error.code == "session_too_long"
    assert error.close_code == 1008


def test_max_sessions(serve) -> None:
    server = serve(max_sessions=2)

    async def run():
        first = await AsrClient(server.ws_url("/asr")).__aenter__()
        second = await TtsClient(server.ws_url("/tts")).__aenter__()
        refused, code = await exchange(server.ws_url("/asr"), [START])
        await first.close()
        await second.ws.close()
        await asyncio.sleep(0.3)
        again, _ = await exchange(server.ws_url("/asr"), [START, {"type": "end"}])
        return refused, code, again

    refused, code, again = asyncio.run(run())
    assert errors(refused)[0]["code"] == "server_busy" and code == 1013
    assert again[-1]["type"] == "final" and again[-1]["last"]


def test_bearer_token(serve) -> None:
    import httpx2 as httpx

    server = serve(token="s3cret")
    url = server.ws_url("/asr")
    cases = {
        "none": ({}, url),
        "wrong": ({"Authorization": "Bearer nope"}, url),
    }
    for headers, target in cases.values():
        received, code = asyncio.run(exchange(target, [START], headers=headers))
        assert errors(received)[0]["code"] == "unauthorized" and code == 1008
    ok = [
        ({"Authorization": "Bearer s3cret"}, url),
        ({}, url + "?token=s3cret"),
    ]
    for headers, target in ok:
        received, code = asyncio.run(
            exchange(target, [START, {"type": "end"}], headers=headers)
        )
        assert code == 1000 and received[-1]["last"]
    response = httpx.post(server.url("/v1/audio/speech"), json={"input": "hi"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert httpx.get(server.url("/metrics")).status_code == 401
    assert httpx.get(server.url("/healthz")).status_code == 200
    authorized = httpx.get(
        server.url("/metrics"), headers={"Authorization": "Bearer s3cret"}
    )
    assert authorized.status_code == 200


def test_allowed_origins(serve) -> None:
    server = serve(allowed_origins=("https://app.example",))
    url = server.ws_url("/tts")
    refused, code = asyncio.run(
        exchange(url, [SYNTH], headers={"Origin": "https://evil.example"})
    )
    assert errors(refused)[0]["code"] == "origin_not_allowed" and code == 1008
    for origin in ("https://app.example", f"http://127.0.0.1:{server.port}"):

        async def run(origin=origin):
            from websockets.asyncio.client import connect

            async with connect(url, additional_headers={"Origin": origin}) as ws:
                await ws.send(json.dumps(SYNTH))
                while json.loads(await ws.recv())["type"] != "start":
                    pass

        asyncio.run(run())


def test_sessions_are_freed_without_the_cycle_collector(serve, speech_file) -> None:
    """Ended sessions free their streams and model states at once (by
    reference counting): memory does not wait for a full GC pass."""
    import gc

    from server.asr import _AsrSession
    from server.batching import AsrSlot, TtsJob
    from server.session import WsSession
    from server.tts import _TtsSession
    from speech.asr.recognizer import RecognizerStream

    server = serve()
    samples, _ = sf.read(speech_file, dtype="float32", frames=3 * 16000)
    types = (WsSession, _AsrSession, _TtsSession, AsrSlot, TtsJob, RecognizerStream)

    async def run():
        await stream_audio(samples, 16000, server.ws_url("/asr"))
        async with TtsClient(server.ws_url("/tts")) as tts:
            _ = [c async for c in tts.synthesize("Hello there.")]
            await tts.request("A longer text to cancel. " * 10)
            await asyncio.sleep(0.05)
            await tts.cancel()
            async for event, _ in tts.receive():
                if event["type"] == "done":
                    break
        await exchange(server.ws_url("/asr"), ["{bad json"])
        await exchange(server.ws_url("/tts"), [b"\x00"])
        async with AsrClient(server.ws_url("/asr")) as asr:
            await asr.send(samples[:16000])
            asr.ws.transport.abort()

    gc.collect()
    gc.disable()
    try:
        asyncio.run(run())
        assert wait_until(lambda: not server.hub.sessions)

        def live() -> list[str]:
            return [type(o).__name__ for o in gc.get_objects() if type(o) in types]

        # the batchers' and handlers' last passes may take a moment on a
        # loaded machine; with the collector off, only refcounting frees
        assert wait_until(lambda: not live(), timeout=5.0), live()
    finally:
        gc.enable()
