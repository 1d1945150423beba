"""The browser demo end to end in headless Chromium (Debian's chromium and
chromedriver), with a WAV file as the fake microphone.

With the tiny random model the test checks that the page renders what the
server sends (partials while listening, finals after stop) and plays
streamed TTS audio. With the shipped model it checks that the expected words
appear on the page.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech.asr.metrics import character_errors

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if CHROMIUM is None or CHROMEDRIVER is None:  # ./install.sh installs both
    pytest.fail(
        "the browser tests need Debian's chromium and chromium-driver "
        "(run ./install.sh)",
        pytrace=False,
    )


def make_microphone_wav(path: Path, text: str, voice: str = "slt") -> Path:
    """flite speech with silence around it, as the fake microphone's input."""
    spoken = path.with_suffix(".flite.wav")
    subprocess.run(
        ["flite", "-voice", voice, "-t", text, "-o", str(spoken)], check=True
    )
    samples, rate = sf.read(spoken, dtype="float32")
    silence = np.zeros(rate // 2, np.float32)
    tail = np.zeros(3 * rate, np.float32)  # lets the endpoint close the segment
    sf.write(path, np.concatenate([silence, samples, tail]), rate, subtype="PCM_16")
    return path


def chromium(microphone: Path, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def counter(driver, name: str) -> int:
    value = driver.execute_script(f"return document.body.dataset.{name} || '0'")
    return int(value)


def wait(driver, condition, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def run_microphone(driver, url: str, listen_until) -> None:
    driver.get(url)
    driver.find_element("id", "mic-start").click()
    wait(driver, listen_until, 60)
    driver.find_element("id", "mic-stop").click()
    wait(driver, lambda d: d.find_element("id", "asr-status").text == "Done.", 30)


def test_demo_renders_results_and_plays_speech(serve, tmp_path) -> None:
    server = serve()
    microphone = make_microphone_wav(
        tmp_path / "mic.wav", "she sells sea shells by the sea shore"
    )
    driver = chromium(microphone, tmp_path / "profile")
    try:
        run_microphone(
            driver, server.url("/"), lambda d: counter(d, "asrPartials") >= 3
        )
        log = driver.execute_script("return window.speechLog")
        assert log[0]["type"] == "started"
        partials = [m for m in log if m["type"] == "partial"]
        finals = [m for m in log if m["type"] == "final"]
        assert len(partials) == counter(driver, "asrPartials") >= 3
        assert finals and finals[-1]["last"]
        assert counter(driver, "asrFinals") == len(finals)
        shown = [p.text for p in driver.find_elements("css selector", "#finals p")]
        assert shown == [m["text"] for m in finals if m["text"]]
        assert driver.find_element("id", "partial").text == ""

        # TTS: type, speak, count the streamed audio
        box = driver.find_element("id", "tts-text")
        box.clear()
        box.send_keys("Hello from the browser. This is streamed speech.")
        driver.find_element("id", "tts-speak").click()
        wait(driver, lambda d: counter(d, "ttsDone") == 1)
        done = [m for m in driver.execute_script("return window.speechLog")
                if m["type"] == "done"]  # fmt: skip
        assert done[0]["samples"] == counter(driver, "ttsSamples") > 0
        assert counter(driver, "ttsChunks") > 1
        assert "Done" in driver.find_element("id", "tts-status").text
    finally:
        driver.quit()


def test_demo_shows_the_spoken_words_with_the_shipped_model(tmp_path) -> None:
    from server.app import BackgroundServer, create_app
    from server.config import ServerConfig

    sentence = "the weather will be cold and windy in the north tomorrow"
    microphone = make_microphone_wav(tmp_path / "mic.wav", sentence)
    seconds = sf.info(microphone).duration
    app = create_app(ServerConfig(tts=False))
    with BackgroundServer(app) as server:
        driver = chromium(microphone, tmp_path / "profile")
        try:
            started = time.monotonic()
            # an endpoint closes the sentence, or the file has been played
            run_microphone(
                driver,
                server.url("/"),
                lambda d: (
                    counter(d, "asrFinals") >= 1
                    or time.monotonic() - started > seconds + 1.5
                ),
            )
            page = driver.find_element("id", "transcript").text.lower()
        finally:
            driver.quit()
    # the shipped model's streaming WER on held-out voices is about 20 %
    # (README), so the page is checked letter by letter, and most words
    # must be there verbatim
    edits, letters = character_errors(sentence, page)
    assert edits <= 0.2 * letters, page
    expected = sentence.split()
    found = [word for word in expected if word in page.split()]
    assert len(found) >= 0.6 * len(expected), page
