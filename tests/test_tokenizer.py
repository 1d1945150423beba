"""SentencePiece BPE tokenizer with the CTC blank at id 0."""

from __future__ import annotations

import pytest

from speech.asr.tokenizer import BLANK_ID, UNK_ID, Tokenizer

TEXTS = [
    "the cat sat on the mat",
    "a dog ate the cat's food",
    "hello world",
    "it's a small world after all",
    "we don't know what they're doing",
    "quick brown foxes jump over lazy dogs",
] * 10


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("tok") / "sub" / "bpe"
    tok = Tokenizer.train(TEXTS, vocab_size=60, model_prefix_path=prefix)
    assert prefix.with_name("bpe.model").exists()
    assert prefix.with_name("bpe.vocab").exists()
    return tok


def test_layout(tokenizer):
    assert tokenizer.vocab_size == len(tokenizer) == 60
    assert tokenizer.id_to_piece(BLANK_ID) == "<blank>" == tokenizer.id_to_piece(0)
    assert tokenizer.id_to_piece(UNK_ID) == "<unk>"
    assert tokenizer.blank_id == 0 and tokenizer.unk_id == 1


@pytest.mark.parametrize(
    "text", ["the cat sat on the mat", "it's a small world", "we don't", "zebra"]
)
def test_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids and BLANK_ID not in ids
    assert tokenizer.decode(ids) == text


def test_decode_skips_blank(tokenizer):
    ids = tokenizer.encode("hello world")
    with_blanks = [0] + [i for token in ids for i in (token, 0)]
    assert tokenizer.decode(with_blanks) == "hello world"
    assert tokenizer.decode([]) == ""


def test_word_starts(tokenizer):
    ids = tokenizer.encode("hello world after all")
    starts = [tokenizer.is_word_start(i) for i in ids]
    assert sum(starts) == 4 and starts[0]
    for token_id in ids:
        piece = tokenizer.id_to_piece(token_id)
        assert tokenizer.is_word_start(token_id) == piece.startswith("\u2581")
        assert tokenizer.piece_to_id(piece) == token_id
    mask = tokenizer.word_start_mask
    assert mask.shape == (60,) and not mask[0] and not mask[1]


def test_unknown_characters(tokenizer):
    assert UNK_ID in tokenizer.encode("7")  # no digit appears in TEXTS


def test_save_load_bytes(tokenizer, tmp_path):
    path = tmp_path / "copy.model"
    tokenizer.save(path)
    assert Tokenizer.load(path).path == path
    assert Tokenizer.from_bytes(tokenizer.to_bytes()).path is None
    for copy in (Tokenizer.load(path), Tokenizer.from_bytes(tokenizer.to_bytes())):
        assert copy.vocab_size == tokenizer.vocab_size
        assert copy.encode("the cat") == tokenizer.encode("the cat")


def test_errors(tmp_path):
    for vocab_size in (50, 500):
        with pytest.raises(ValueError, match="cannot train tokenizer"):
            Tokenizer.train(["ab ba"] * 3, vocab_size, tmp_path / "t")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a tokenizer model"):
        Tokenizer.load(tmp_path / "missing.model")
    with pytest.raises(ValueError, match="not a tokenizer model"):
        Tokenizer.load(tmp_path / "junk.model")
