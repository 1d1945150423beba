"""The OpenAI-compatible HTTP endpoints, driven by the official ``openai``
client against a running server; health and metrics."""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest

from speech.audio import load_audio


@pytest.fixture(scope="module")
def http_server(server_models):
    from server.app import BackgroundServer, create_app
    from server.config import ServerConfig

    recognizer, synthesizer = server_models
    app = create_app(ServerConfig(threads=1, token="t0ken"), recognizer, synthesizer)
    with BackgroundServer(app) as server:
        yield server


@pytest.fixture
def client(http_server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=http_server.url("/v1"), api_key="t0ken", max_retries=0, timeout=60
    )


def test_transcriptions_all_formats(client, server_models, speech_file) -> None:
    expected = server_models[0].transcribe(speech_file)
    assert expected.text

    def create(fmt: str, **extra):
        with open(speech_file, "rb") as f:
            return client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format=fmt, **extra
            )

    assert create("json").text == expected.text
    verbose = create("verbose_json", timestamp_granularities=["word", "segment"])
    assert verbose.text == expected.text
    assert verbose.duration == pytest.approx(expected.duration, abs=1e-3)
    assert verbose.language == "english"
    words = [w for s in expected.segments for w in s.words]
    assert [w.word for w in verbose.words] == [w.text for w in words]
    assert [w.start for w in verbose.words] == [round(w.start, 3) for w in words]
    assert len(verbose.segments) == len(expected.segments)
    text = create("text")
    assert text.split() == expected.text.split()
    srt = create("srt")
    assert srt.startswith("1\n00:00:") and " --> " in srt
    vtt = create("vtt")
    assert vtt.startswith("WEBVTT") and " --> " in vtt
    # the vtln extension field: the file's own warp, as the library picks it
    auto = create("json", extra_body={"vtln": "auto"})
    assert auto.text == server_models[0].transcribe(speech_file, vtln="auto").text
    fixed = create("json", extra_body={"vtln": "1.2"})
    assert fixed.text == server_models[0].transcribe(speech_file, vtln=1.2).text
    ensemble = create("json", extra_body={"vtln": "1.5,1.2"})
    library = server_models[0].transcribe(speech_file, vtln=(1.2, 1.5)).text
    assert ensemble.text == library != server_models[0].transcribe(speech_file).text


def test_transcription_errors(client, http_server, tmp_path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with pytest.raises(openai.BadRequestError) as raised, open(bad, "rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert raised.value.code == "bad_audio" and "notes.wav" in raised.value.message
    with pytest.raises(openai.BadRequestError) as raised, open(bad, "rb") as f:
        client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="xml"
        )
    assert raised.value.code == "bad_format"
    with pytest.raises(openai.BadRequestError) as raised, open(bad, "rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
    assert raised.value.code == "bad_option"
    with pytest.raises(openai.BadRequestError) as raised, open(bad, "rb") as f:
        client.audio.transcriptions.create(
            model="whisper-1", file=f, extra_body={"vtln": "9"}
        )
    assert raised.value.code == "bad_option" and "'vtln'" in raised.value.message
    with pytest.raises(openai.BadRequestError) as raised, open(bad, "rb") as f:
        client.audio.transcriptions.create(
            model="whisper-1", file=f, extra_body={"vtln": "1,1"}
        )
    assert raised.value.code == "bad_option" and "distinct" in raised.value.message
    anonymous = openai.OpenAI(
        base_url=http_server.url("/v1"), api_key="wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError), open(bad, "rb") as f:
        anonymous.audio.transcriptions.create(model="whisper-1", file=f)


def test_speech_wav_streamed(client, server_models, tmp_path) -> None:
    synthesizer = server_models[1]
    text = "Hello there. This is a streamed answer, sentence by sentence."
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="wav", speed=1.25
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        assert "content-length" not in response.headers  # chunked, as made
        pieces = list(response.iter_bytes())
    data = b"".join(pieces)
    path = tmp_path / "speech.wav"
    path.write_bytes(data)
    audio = load_audio(path, synthesizer.sample_rate)
    expected = synthesizer.synthesize(text, pace=1.25)
    assert len(audio) == len(expected)
    np.testing.assert_allclose(audio, expected, atol=2 / 32768 + 2e-5)


def test_speech_pcm_is_24k(client, server_models) -> None:
    synthesizer = server_models[1]
    text = "One more sentence."
    response = client.audio.speech.create(
        model="tts-1", voice="nova", input=text, response_format="pcm"
    )
    pcm = np.frombuffer(response.read(), "<i2")
    expected = len(synthesizer.synthesize(text)) * 24000 / synthesizer.sample_rate
    assert abs(len(pcm) - expected) <= 2


def test_speech_errors(client, http_server) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.speech.create(
            model="tts-1", voice="alloy", input="Hi.", response_format="mp3"
        )
    assert raised.value.code == "bad_format"
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.speech.create(model="tts-1", voice="someone", input="Hi.")
    assert raised.value.code == "unknown_voice"
    with pytest.raises(openai.APIStatusError) as raised:
        client.audio.speech.create(model="tts-1", voice="alloy", input="a" * 5000)
    assert raised.value.status_code == 413
    assert http_server.hub.http_active == 0


def test_health_and_metrics(http_server, client, speech_file) -> None:
    import httpx2 as httpx

    health = httpx.get(http_server.url("/healthz")).json()
    assert health["status"] == "ok"
    assert health["asr"]["sample_rate"] == 16000
    assert health["tts"]["voices"] == ["default"]
    assert set(health["sessions"]) == {"asr", "tts", "http", "max"}
    with open(speech_file, "rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    text = httpx.get(
        http_server.url("/metrics"), headers={"Authorization": "Bearer t0ken"}
    ).text
    for name in (
        "speech_sessions_active",
        "speech_asr_result_latency_seconds_bucket",
        "speech_tts_first_audio_seconds_bucket",
        "speech_asr_real_time_factor",
        "speech_tts_real_time_factor",
        'speech_http_requests_total{endpoint="transcriptions",status="200"}',
    ):
        assert name in text, name
    assert json.loads(json.dumps(health))  # plain JSON
