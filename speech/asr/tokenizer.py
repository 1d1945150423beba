"""SentencePiece BPE tokenizer whose id 0 is the CTC blank.

Layout of the vocabulary (what the CTC head's outputs mean):

    0  <blank>  the CTC blank; a SentencePiece *control* symbol, so it is never
                produced by ``encode`` and ``decode`` skips it
    1  <unk>    unknown characters
    2… pieces   BPE pieces; a piece starting with "▁" (U+2581) begins a word

The blank is SentencePiece's padding symbol renamed (``pad_id=0``,
``pad_piece="<blank>"``), so model ids and CTC ids are the same numbers: no
offset to add or remove anywhere. There are no BOS/EOS symbols (CTC needs
none). Texts are in the canonical form of ``speech.text``: lowercase a-z,
apostrophe and single spaces; the model is trained with the "identity"
normalisation, so what goes in comes back out unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

__all__ = ["BLANK_ID", "BLANK_PIECE", "UNK_ID", "WORD_START", "Tokenizer"]

BLANK_ID = 0
BLANK_PIECE = "<blank>"
UNK_ID = 1
WORD_START = "\u2581"  # "▁", SentencePiece's word-boundary mark


class Tokenizer:
    """Text <-> CTC token ids. Build with ``train``, ``load`` or ``from_bytes``."""

    def __init__(
        self, processor: spm.SentencePieceProcessor, path: Path | None = None
    ) -> None:
        if processor.get_piece_size() < 3 or processor.id_to_piece(0) != BLANK_PIECE:
            raise ValueError(
                f"tokenizer model must have {BLANK_PIECE} at id 0 "
                f"(found {processor.id_to_piece(0)!r}); train it with Tokenizer.train"
            )
        self._sp = processor
        self.path = path  # the .model file it came from, if any
        self._pieces = [processor.id_to_piece(i) for i in range(self.vocab_size)]
        self._word_start = np.array([p.startswith(WORD_START) for p in self._pieces])

    # ------------------------------------------------------------ building

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        model_prefix_path: str | os.PathLike[str],
        *,
        character_coverage: float = 1.0,
        max_sentences: int = 0,
    ) -> Tokenizer:
        """Train a BPE model on ``texts``; write ``<prefix>.model`` and ``.vocab``.

        ``vocab_size`` counts every id, blank and unk included, so it is the
        width of the CTC head. ``max_sentences`` > 0 trains on a random sample
        of that many texts (for large corpora). Raises ``ValueError`` when the
        texts cannot support ``vocab_size`` pieces.
        """
        prefix = Path(model_prefix_path)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        sentences = (text for text in texts if text.strip())
        with open(os.devnull, "w") as quiet:
            try:
                spm.SentencePieceTrainer.train(
                    sentence_iterator=sentences,
                    model_prefix=str(prefix),
                    vocab_size=vocab_size,
                    model_type="bpe",
                    pad_id=BLANK_ID,
                    pad_piece=BLANK_PIECE,
                    unk_id=UNK_ID,
                    bos_id=-1,
                    eos_id=-1,
                    character_coverage=character_coverage,
                    normalization_rule_name="identity",
                    input_sentence_size=max_sentences,
                    shuffle_input_sentence=max_sentences > 0,
                    num_threads=min(8, os.cpu_count() or 1),
                    logstream=quiet,
                    minloglevel=2,
                )
            except RuntimeError as error:
                raise ValueError(f"cannot train tokenizer: {error}") from None
        tokenizer = cls.load(prefix.with_name(prefix.name + ".model"))
        if tokenizer.vocab_size != vocab_size:  # BPE may stop early without error
            raise ValueError(
                f"cannot train tokenizer: the texts support {tokenizer.vocab_size} "
                f"ids, not {vocab_size}; lower vocab_size or add text"
            )
        return tokenizer

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a ``.model`` file written by ``train`` or ``save``."""
        processor = spm.SentencePieceProcessor()
        try:
            processor.load(os.fspath(path))
        except (OSError, RuntimeError) as error:
            reason = " ".join(str(error).split())
            raise ValueError(
                f"{os.fspath(path)}: not a tokenizer model ({reason})"
            ) from None
        return cls(processor, Path(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> Tokenizer:
        """Rebuild from ``to_bytes()`` (e.g. stored in ONNX metadata)."""
        return cls(spm.SentencePieceProcessor(model_proto=data))

    def to_bytes(self) -> bytes:
        """The serialised model, as a ``.model`` file holds it."""
        return self._sp.serialized_model_proto()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the ``.model`` file (atomically)."""
        from speech.formats import atomic_output

        with atomic_output(path) as file:
            file.write(self.to_bytes())

    # ------------------------------------------------------------ using

    @property
    def vocab_size(self) -> int:
        """Number of ids, blank included (the CTC head's width)."""
        return self._sp.get_piece_size()

    @property
    def blank_id(self) -> int:
        return BLANK_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    def encode(self, text: str) -> list[int]:
        """Canonical text -> token ids (never the blank)."""
        return self._sp.encode(text, out_type=int)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Token ids -> text; blanks are skipped, pieces joined at "▁"."""
        return self._sp.decode([int(i) for i in ids])

    def id_to_piece(self, token_id: int) -> str:
        return self._pieces[token_id]

    def piece_to_id(self, piece: str) -> int:
        return self._sp.piece_to_id(piece)

    def is_word_start(self, token_id: int) -> bool:
        """Whether the piece begins with "▁", i.e. starts a new word."""
        return bool(self._word_start[token_id])

    @property
    def word_start_mask(self) -> np.ndarray:
        """(V,) bool, ``is_word_start`` for every id."""
        return self._word_start.copy()

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size})"
