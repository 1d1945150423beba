"""Result types and their txt / json / srt / vtt writers."""

from __future__ import annotations

import json

import pytest

from speech.formats import (
    Segment,
    Transcript,
    Word,
    format_timestamp,
    subtitle_cues,
    to_json,
    to_srt,
    to_txt,
    to_vtt,
    write_text_atomic,
)


def _words(text: str, start: float, step: float = 0.5) -> list[Word]:
    return [
        Word(w, start + i * step, start + i * step + 0.4, 0.9)
        for i, w in enumerate(text.split())
    ]


@pytest.fixture
def transcript() -> Transcript:
    first = Segment("hello world", 1.0, 1.9, _words("hello world", 1.0))
    second = Segment("good night", 3661.5, 3662.25)  # no words
    return Transcript("hello world good night", [first, second], duration=3663.0)


@pytest.mark.parametrize(
    "seconds,srt,vtt",
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.0005, "00:00:01,000", "00:00:01.000"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (3725.046, "01:02:05,046", "01:02:05.046"),
        (360000.0, "100:00:00,000", "100:00:00.000"),
        (-0.2, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_format_timestamp(seconds, srt, vtt):
    assert format_timestamp(seconds) == srt
    assert format_timestamp(seconds, ".") == vtt


def test_srt(transcript):
    assert to_srt(transcript) == (
        "1\n"
        "00:00:01,000 --> 00:00:01,900\n"
        "hello world\n"
        "\n"
        "2\n"
        "01:01:01,500 --> 01:01:02,250\n"
        "good night\n"
    )


def test_vtt(transcript):
    assert to_vtt(transcript) == (
        "WEBVTT\n"
        "\n"
        "00:00:01.000 --> 00:00:01.900\n"
        "hello world\n"
        "\n"
        "01:01:01.500 --> 01:01:02.250\n"
        "good night\n"
    )


def test_long_segment_with_words_is_wrapped_and_split():
    text = " ".join(f"word{i:02d}" for i in range(30))  # 30 x 6 chars + spaces
    segment = Segment(text, 0.0, 15.0, _words(text, 0.0))
    cues = subtitle_cues([segment])
    assert len(cues) > 1
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines)
    # Words are all there, in order, and cue times come from the words.
    assert " ".join(" ".join(c.lines) for c in cues) == text
    assert cues[0].start == 0.0 and cues[-1].end == pytest.approx(14.9)
    first_count = sum(len(line.split()) for line in cues[0].lines)
    assert cues[1].start == pytest.approx(0.5 * first_count)
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:], strict=False))


def test_long_segment_without_words_splits_time_by_characters():
    text = "a" * 10 + " " + "b" * 30 + " " + "c" * 40 + " " + "d" * 40 + " e"
    cues = subtitle_cues([Segment(text, 10.0, 20.0)], max_line_width=42)
    assert [c.lines for c in cues] == [
        ["a" * 10 + " " + "b" * 30, "c" * 40],
        ["d" * 40 + " e"],
    ]
    assert cues[0].start == 10.0 and cues[-1].end == pytest.approx(20.0)
    assert cues[0].end == pytest.approx(10.0 + 10.0 * 81 / 123)  # by characters
    assert cues[1].start == cues[0].end


def test_over_long_word_and_empty_segments():
    word = "x" * 60
    cues = subtitle_cues([Segment(word, 0, 1), Segment("  ", 1, 2)])
    assert [c.lines for c in cues] == [[word]]
    zero = subtitle_cues([Segment("hi", 5.0, 5.0)])
    assert zero[0].end > zero[0].start


def test_txt(transcript):
    assert to_txt(transcript) == "hello world\ngood night\n"
    assert to_txt(Transcript("just text", [], 1.0)) == "just text\n"
    assert to_txt(Transcript("", [], 1.0)) == ""


def test_json_round_trip(transcript):
    transcript.segments[0].words[0].start = 1.00049
    data = json.loads(to_json(transcript))
    assert data["language"] == "en" and data["duration"] == 3663.0
    assert data["segments"][0]["words"][0] == {
        "text": "hello",
        "start": 1.0,
        "end": 1.4,
        "confidence": 0.9,
    }
    back = Transcript.from_dict(data)
    assert back.segments[1] == transcript.segments[1]
    assert back.segments[0].words[1] == transcript.segments[0].words[1]
    assert to_json(back) == to_json(transcript)


def test_write_text_atomic(tmp_path):
    path = tmp_path / "out.srt"
    write_text_atomic(path, "première\n")
    assert path.read_text(encoding="utf-8") == "première\n"
    path.chmod(0o600)
    write_text_atomic(path, "second\n")
    assert path.read_text() == "second\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.srt"]
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "no" / "dir.txt", "x")
