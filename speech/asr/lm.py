"""Word n-gram language model for shallow fusion in CTC prefix beam search.

A CTC model spells each word from the sound alone, so an unfamiliar word
comes out as it sounds ("thuss", "seelestial"). A word n-gram model of the
text the users speak corrects most of these: the beam search adds
``weight * ln P(word | history) + word_bonus`` each time a word is complete
(``LmFusion``), which re-ranks spellings towards real words in likely order;
a word outside the vocabulary also pays ``oov_penalty`` per letter, so that
running several words together into one unknown word does not pay off.

``NgramLM`` reads and writes the standard ARPA format (plain or gzip), so a
model estimated by KenLM's ``lmplz`` or SRILM works too. ``NgramLM.estimate``
builds one from sentences with interpolated Kneser-Ney smoothing (one
discount per order, ``D = n1 / (n1 + 2 n2)``), written in backoff form:
every seen n-gram stores its interpolated probability and every context its
interpolation weight, so unseen words back off exactly as the interpolated
model would give them. Words outside the vocabulary score as ``<unk>``,
which holds the unigram discount's share of one uniform word.

Queries follow ARPA backoff semantics, with states kept as the shortest
history the model can still tell apart (KenLM's state minimisation), which
makes the memo of ``score`` small.

The n-grams live in ``NgramTable``: words as integer ids, each n-gram packed
into one integer, one sorted numpy array of keys and two of values per
order, searched by bisection. Two million n-grams take about 50 MB instead of
the 600 MB of a dict of tuples. Parsing a large ARPA file takes seconds, so
``NgramLM.load`` keeps the parsed arrays in a cache file named by the ARPA
file's SHA-256 (``$SPEECH_CACHE_DIR``, else ``$XDG_CACHE_HOME/speech`` or
``~/.cache/speech``; ``SPEECH_CACHE_DIR=""`` turns it off): later loads of
the same file read the arrays instead. The cache keeps the parsed arrays of
the ``CACHE_KEEP`` LM files used last (each load of a cached file marks it
used) and deletes older entries when it writes a new one. A cache that
cannot be written or read is skipped with a log line, never an error.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import math
import os
import tempfile
import zipfile
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from speech.asr.tokenizer import WORD_START

__all__ = [
    "BOS",
    "DEFAULT_LM_WEIGHT",
    "DEFAULT_OOV_PENALTY",
    "DEFAULT_WORD_BONUS",
    "EOS",
    "UNK",
    "FusionNode",
    "LmFusion",
    "NgramLM",
    "NgramTable",
    "check_oov_penalty",
]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# Fusion defaults, tuned on the shipped model's dev set (training voices,
# unseen sentences) with its LM (fortunes + WordNet sentences + lexicon):
# beam 16, weight 0.4-0.6 x bonus 1-2, best at 0.5 / 1.5
# (benchmarks/asr_lm_sweep.py).
DEFAULT_LM_WEIGHT = 0.5
DEFAULT_WORD_BONUS = 1.5
# Fused score taken per letter of a word outside the LM's vocabulary (its
# spelling cost, on top of ``<unk>``'s probability; 0 turns it off), chosen
# on the dev and MBROLA tuning sets with the defaults above: 0, 0.5, 1, 2.
DEFAULT_OOV_PENALTY = 0.5
_LN10 = math.log(10.0)
_LOG10_ZERO = -99.0  # ARPA's "never" (the probability of <s>)

State = tuple[str, ...]

_ID_BITS = 21  # bits per word id in a packed n-gram key
_CACHE_VERSION = 1  # bump when the cached arrays change meaning
CACHE_KEEP = 4  # parsed LMs kept in the cache folder (the most recently used)

logger = logging.getLogger(__name__)


def _evict(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used cached LMs in ``folder``
    (other files are left alone)."""
    try:
        entries = sorted(
            folder.glob("lm-*.npz"), key=lambda p: p.stat().st_mtime_ns, reverse=True
        )
        for stale in entries[keep:]:
            stale.unlink(missing_ok=True)
            logger.info("LM cache: removed %s (least recently used)", stale.name)
    except OSError as error:
        logger.info("LM cache %s not pruned (%s)", folder, error)


def cache_dir() -> Path | None:
    """Where parsed LMs are cached (None: caching is off)."""
    configured = os.environ.get("SPEECH_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "speech"


class NgramTable(Mapping[State, tuple[float, float]]):
    """n-gram -> (log10 p, log10 backoff), compact and read-only.

    Words get ids from 1 in order of first appearance; an n-gram's key packs
    its ids ``_ID_BITS`` bits apart. Per order the keys sit sorted in a numpy
    array (int64, or Python ints when an order's keys outgrow 63 bits) with
    float64 values beside them, so a lookup is one bisection and the values
    are exactly those given."""

    def __init__(self, grams: Iterable[tuple[State, float, float]]) -> None:
        self._ids: dict[str, int] = {}
        self._words: list[str] = [""]
        keys: dict[int, list[int]] = defaultdict(list)
        probs: dict[int, array] = defaultdict(lambda: array("d"))
        bows: dict[int, array] = defaultdict(lambda: array("d"))
        for gram, log_p, bow in grams:
            key = 0
            for word in gram:
                index = self._ids.get(word)
                if index is None:
                    index = len(self._words)
                    if index >= 1 << _ID_BITS:
                        raise ValueError("more than two million words")
                    self._ids[word] = index
                    self._words.append(word)
                key = (key << _ID_BITS) | index
            keys[len(gram)].append(key)
            probs[len(gram)].append(log_p)
            bows[len(gram)].append(bow)
        self._tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for n, order_keys in keys.items():
            dtype = np.int64 if n * _ID_BITS <= 63 else object
            packed = np.array(order_keys, dtype=dtype)
            del order_keys[:]
            order = np.argsort(packed, kind="stable")
            packed = packed[order]
            repeated = np.flatnonzero(packed[1:] == packed[:-1])
            if len(repeated):
                gram = self._decode(int(packed[repeated[0]]), n)
                raise ValueError(f"the n-gram {' '.join(gram)!r} is listed twice")
            self._tables[n] = (
                packed,
                np.frombuffer(probs[n], dtype=np.float64)[order],
                np.frombuffer(bows[n], dtype=np.float64)[order],
            )

    def _index(self, gram: State) -> tuple[int, int]:
        """(order, position) of ``gram``, or (0, -1) when absent."""
        table = self._tables.get(len(gram))
        if table is None:
            return 0, -1
        key = 0
        for word in gram:
            index = self._ids.get(word)
            if index is None:
                return 0, -1
            key = (key << _ID_BITS) | index
        packed = table[0]
        position = int(packed.searchsorted(key))
        if position < len(packed) and packed.item(position) == key:
            return len(gram), position
        return 0, -1

    def get(self, gram: State, default=None):  # type: ignore[no-untyped-def,override]
        n, position = self._index(gram)
        if position < 0:
            return default
        _, probs, bows = self._tables[n]
        return probs.item(position), bows.item(position)

    def __getitem__(self, gram: State) -> tuple[float, float]:
        value = self.get(gram)
        if value is None:
            raise KeyError(gram)
        return value

    def __contains__(self, gram: object) -> bool:
        return isinstance(gram, tuple) and self._index(gram)[1] >= 0

    def __len__(self) -> int:
        return sum(self.counts().values())

    def counts(self) -> dict[int, int]:
        """How many n-grams of each order the table holds."""
        return {n: len(self._tables[n][0]) for n in sorted(self._tables)}

    def max_values(self) -> tuple[float, float]:
        """The largest log10 p and the largest log10 backoff of any n-gram."""
        tables = [t for t in self._tables.values() if len(t[0])]
        return (
            max(float(probs.max()) for _, probs, _ in tables),
            max(float(bows.max()) for _, _, bows in tables),
        )

    def _decode(self, key: int, n: int) -> State:
        mask = (1 << _ID_BITS) - 1
        ids = [(key >> (_ID_BITS * (n - 1 - j))) & mask for j in range(n)]
        return tuple(self._words[i] for i in ids)

    def __iter__(self) -> Iterator[State]:
        for n in sorted(self._tables):
            for key in self._tables[n][0]:
                yield self._decode(int(key), n)

    def words(self) -> list[str]:
        """Every word the table knows (each appears in some n-gram)."""
        return self._words[1:]

    def to_arrays(self) -> dict[str, np.ndarray] | None:
        """The table as plain arrays (None when an order's keys are Python
        ints, which only a pickle could store)."""
        arrays = {
            "words": np.frombuffer(
                "\n".join(self._words[1:]).encode("utf-8"), dtype=np.uint8
            )
        }
        for n, (keys, probs, bows) in self._tables.items():
            if keys.dtype == object:
                return None
            arrays.update({f"keys{n}": keys, f"probs{n}": probs, f"bows{n}": bows})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> NgramTable:
        table = cls(())
        words = bytes(arrays["words"]).decode("utf-8").split("\n")
        table._words = ["", *words] if words != [""] else [""]
        table._ids = {w: i for i, w in enumerate(table._words) if i}
        for name in arrays:
            if name.startswith("keys"):
                n = int(name[4:])
                keys = np.asarray(arrays[name], dtype=np.int64)
                probs = np.asarray(arrays[f"probs{n}"], dtype=np.float64)
                bows = np.asarray(arrays[f"bows{n}"], dtype=np.float64)
                if not len(keys) == len(probs) == len(bows):
                    raise ValueError(f"order {n}: arrays of different lengths")
                table._tables[n] = (keys, probs, bows)
        return table


class NgramLM:
    """A backoff word n-gram model: ``entries[ngram] = (log10 p, log10 bow)``
    (an ``NgramTable``; a plain mapping given here is converted)."""

    def __init__(
        self, order: int, entries: Mapping[State, tuple[float, float]]
    ) -> None:
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        if not isinstance(entries, NgramTable):
            entries = NgramTable((g, p, b) for g, (p, b) in entries.items())
        if (UNK,) not in entries:
            raise ValueError("the model has no <unk> unigram")
        self.order = order
        self.entries = entries
        self._memo: dict[tuple[State, str], tuple[float, State]] = {}

    # ---------------------------------------------------------- estimation

    @classmethod
    def estimate(
        cls,
        sentences: Iterable[Sequence[str]],
        order: int = 3,
        lexicon: Iterable[str] = (),
        unk_penalty: float = 0.0,
    ) -> NgramLM:
        """Interpolated Kneser-Ney model of word sequences (no <s>/</s>).

        ``lexicon``: more words the model should know though no sentence has
        them (a word list); they share the unigram floor, the mass that
        interpolation gives every word, as ``<unk>`` does. ``unk_penalty``
        (log10) lowers ``<unk>`` below that floor: with a lexicon, a spelling
        it does not list is more likely a misspelling than a word.
        """
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        counts: list[Counter[State]] = [Counter() for _ in range(order + 1)]
        for words in sentences:
            padded = (BOS, *words, EOS)
            for n in range(1, order + 1):
                for i in range(len(padded) - n + 1):
                    gram = padded[i : i + n]
                    if gram != (BOS,):
                        counts[n][gram] += 1
        if not counts[1]:
            raise ValueError("no sentences to estimate a language model from")
        # Adjusted counts: raw for the highest order and for n-grams that start
        # a sentence, else the number of distinct words seen before them.
        adjusted: list[Counter[State]] = [Counter() for _ in range(order + 1)]
        adjusted[order] = counts[order]
        for n in range(order - 1, 0, -1):
            for gram in counts[n + 1]:
                adjusted[n][gram[1:]] += 1
            for gram, c in counts[n].items():
                if gram[0] == BOS:
                    adjusted[n][gram] = c
        vocabulary = [w for (w,) in adjusted[1] if w != BOS]
        seen = set(vocabulary)
        extra = sorted({w for w in lexicon if w and w not in seen} - {BOS, EOS, UNK})
        unk_share = 10.0**-unk_penalty  # <unk>'s weight in the unigram floor
        uniform = 1.0 / (len(vocabulary) + len(extra) + unk_share)
        entries: dict[State, tuple[float, float]] = {}
        probability: list[dict[State, float]] = [{} for _ in range(order + 1)]
        gammas: list[dict[State, float]] = [{} for _ in range(order + 1)]
        for n in range(1, order + 1):
            discount = _discount(adjusted[n])
            totals: dict[State, int] = defaultdict(int)
            types: dict[State, int] = defaultdict(int)
            for gram, a in adjusted[n].items():
                totals[gram[:-1]] += a
                types[gram[:-1]] += 1
            gamma = {h: discount * types[h] / totals[h] for h in totals}
            gammas[n] = gamma
            for gram, a in adjusted[n].items():
                h = gram[:-1]
                # Every suffix of a seen n-gram is seen at the order below.
                lower = uniform if n == 1 else probability[n - 1][gram[1:]]
                probability[n][gram] = (a - discount) / totals[h] + gamma[h] * lower
            if n == 1:
                for word in extra:
                    probability[1][(word,)] = gamma[()] * uniform
                probability[1][(UNK,)] = gamma[()] * uniform * unk_share
        for n in range(1, order + 1):
            for gram, p in probability[n].items():
                entries[gram] = (math.log10(p), 0.0)
        entries[(BOS,)] = (_LOG10_ZERO, 0.0)
        for n in range(2, order + 1):
            for h, g in gammas[n].items():
                p, _ = entries[h]
                entries[h] = (p, math.log10(g))
        return cls(order, entries)

    # ---------------------------------------------------------------- ARPA

    @classmethod
    def load(cls, path: str | os.PathLike[str], cache: bool = True) -> NgramLM:
        """An ARPA file, gzip-compressed when its name ends in ``.gz``; with
        ``cache``, through the parsed-arrays cache (module docstring)."""
        path = Path(path)
        folder = cache_dir() if cache else None
        cached, data = None, None
        if folder is not None:
            data = path.read_bytes()  # hashed, then parsed on a cache miss
            digest = hashlib.sha256(data).hexdigest()[:32]
            cached = folder / f"lm-{digest}-v{_CACHE_VERSION}.npz"
            lm = cls._from_cache(cached)
            if lm is not None:
                with contextlib.suppress(OSError):
                    os.utime(cached)  # most recently used: evicted last
                return lm
        lm = cls._parse(path, data)
        if cached is not None:
            lm._to_cache(cached)
        return lm

    @classmethod
    def _from_cache(cls, cached: Path) -> NgramLM | None:
        if not cached.is_file():
            return None
        try:
            with np.load(cached, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            order = int(arrays.pop("order"))
            return cls(order, NgramTable.from_arrays(arrays))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            logger.info("LM cache %s unreadable (%s); parsing the ARPA", cached, error)
            return None

    def _to_cache(self, cached: Path) -> None:
        arrays = self.entries.to_arrays()
        if arrays is None:
            return
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.")
            try:
                with os.fdopen(fd, "wb") as file:
                    np.savez(file, order=np.array(self.order), **arrays)
                os.replace(tmp, cached)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:
            logger.info("LM cache %s not written (%s)", cached, error)
            return
        _evict(cached.parent, keep=CACHE_KEEP)

    @classmethod
    def _parse(cls, path: Path, data: bytes | None = None) -> NgramLM:
        """Parses the ARPA file ``path``, or its ``data`` when already read."""
        order = 0

        def grams() -> Iterator[tuple[State, float, float]]:
            nonlocal order
            section = 0
            raw = open(path, "rb") if data is None else io.BytesIO(data)
            with (
                raw,
                (
                    gzip.open(raw, "rt", encoding="utf-8")
                    if path.suffix == ".gz"
                    else io.TextIOWrapper(raw, encoding="utf-8")
                ) as file,
            ):
                for number, line in enumerate(file, 1):
                    line = line.strip()
                    if not line or line.startswith("ngram ") or line == "\\data\\":
                        continue
                    if line.startswith("\\") and line.endswith("-grams:"):
                        section = int(line[1:].split("-")[0])
                        order = max(order, section)
                        continue
                    if line == "\\end\\":
                        break
                    fields = line.split()
                    if section == 0 or len(fields) < section + 1:
                        raise ValueError(f"{path}:{number}: not an ARPA n-gram line")
                    try:
                        log_p = float(fields[0])
                        bow = (
                            float(fields[section + 1])
                            if len(fields) > section + 1
                            else 0.0
                        )
                    except ValueError:
                        raise ValueError(
                            f"{path}:{number}: not an ARPA n-gram line"
                        ) from None
                    yield tuple(fields[1 : section + 1]), log_p, bow

        try:
            table = NgramTable(grams())
        except ValueError as error:
            if str(error).startswith(str(path)):
                raise
            raise ValueError(f"{path}: {error} (not a valid ARPA file)") from None
        if not len(table):
            raise ValueError(f"{path}: no n-grams (not an ARPA file?)")
        return cls(order, table)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes ARPA (gzip when the name ends in ``.gz``), atomically."""
        path = Path(path)
        by_order: list[list[State]] = [[] for _ in range(self.order + 1)]
        for gram in self.entries:
            by_order[len(gram)].append(gram)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with contextlib.ExitStack() as stack:
                raw = stack.enter_context(os.fdopen(fd, "wb"))
                if path.suffix == ".gz":  # no name or time in the header
                    raw = stack.enter_context(
                        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0)
                    )
                file = stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8"))
                file.write("\\data\\\n")
                for n in range(1, self.order + 1):
                    file.write(f"ngram {n}={len(by_order[n])}\n")
                for n in range(1, self.order + 1):
                    file.write(f"\n\\{n}-grams:\n")
                    for gram in sorted(by_order[n]):
                        log_p, bow = self.entries[gram]
                        # five decimals: 1e-5 log10 is far below what a
                        # count-based estimate can tell, and the file is
                        # 7 % smaller than with six
                        line = f"{log_p:.5f}\t{' '.join(gram)}"
                        if n < self.order and bow != 0.0:
                            line += f"\t{bow:.5f}"
                        file.write(line + "\n")
                file.write("\n\\end\\\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------- queries

    def begin(self) -> State:
        """The state at the start of a sentence."""
        return (BOS,)

    def score(self, state: State, word: str) -> tuple[float, State]:
        """Natural-log P(word | state) and the state after it."""
        key = (state, word)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if (word,) not in self.entries:
            word = UNK
        log10_p = 0.0
        history = state
        while True:
            entry = self.entries.get((*history, word))
            if entry is not None:
                log10_p += entry[0]
                break
            log10_p += self.entries.get(history, (0.0, 0.0))[1]
            history = history[1:]
        new_state = (*state, word)[-(self.order - 1) :] if self.order > 1 else ()
        while new_state and new_state not in self.entries:
            new_state = new_state[1:]
        result = (log10_p * _LN10, new_state)
        if len(self._memo) > 1_000_000:
            self._memo.clear()
        self._memo[key] = result
        return result

    def max_log_prob(self) -> float:
        """An upper bound on any ``score``: at most ``order - 1`` backoffs
        and one n-gram's probability (0 or less for a normalised model)."""
        log_p, bow = self.entries.max_values()
        return (log_p + (self.order - 1) * max(bow, 0.0)) * _LN10

    def sentence_log_prob(self, words: Sequence[str]) -> float:
        """Natural-log probability of a whole sentence, </s> included."""
        state, total = self.begin(), 0.0
        for word in (*words, EOS):
            log_p, state = self.score(state, word)
            total += log_p
        return total


def _discount(adjusted: Counter[State]) -> float:
    n1 = sum(1 for a in adjusted.values() if a == 1)
    n2 = sum(1 for a in adjusted.values() if a == 2)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def check_oov_penalty(value: float) -> float:
    """The spelling cost of unknown words (``LmFusion``), checked."""
    if not value >= 0:  # NaN too
        raise ValueError(f"oov_penalty must be 0 or more, got {value}")
    return value


class FusionNode(NamedTuple):
    """What a beam-search prefix carries for the LM: the state after its
    complete words, their fused score, the word it is still spelling, and
    whether that word has already been scored as ``<unk>``."""

    state: State
    score: float
    partial: str
    closed: bool


class LmFusion:
    """Scores the words a sentencepiece hypothesis completes.

    ``pieces[id]`` is each token's piece; a piece starting with ``▁`` begins a
    word. Each prefix of the beam search carries a ``FusionNode``. A partial
    word that no vocabulary word starts with is scored as ``<unk>`` at once
    (``closed``) rather than when it ends: otherwise a misspelling would ride
    free in the beam, crowding out the real word, until its end (the prefix
    check of pyctcdecode-style decoders).

    ``<unk>`` alone costs the same for any length, so a hypothesis that runs
    several words together into one unknown word ("virginia law forbids
    bathtubs" -> "marginatbidsathtubs") pays it once where the real words pay
    each their own probability. ``oov_penalty`` makes an unknown word pay for
    its spelling too: that much fused score per letter, taken as the letters
    come (a crude letter model: ``P(word) = P(<unk>) * p ** letters``).
    """

    def __init__(
        self,
        lm: NgramLM,
        pieces: Sequence[str],
        weight: float = DEFAULT_LM_WEIGHT,
        word_bonus: float = DEFAULT_WORD_BONUS,
        oov_penalty: float = DEFAULT_OOV_PENALTY,
    ) -> None:
        self.lm = lm
        self.pieces = list(pieces)
        self.weight = weight
        self.word_bonus = word_bonus
        self.oov_penalty = check_oov_penalty(oov_penalty)
        self.prefixes = {
            word[:i] for word in lm.entries.words() for i in range(1, len(word) + 1)
        }
        self._max_log_prob = lm.max_log_prob()

    @property
    def max_gain(self) -> float:
        """The most one ``extend`` can add to a node's score: it scores at
        most two words (the one a word-start piece ends, and the new one as
        ``<unk>``; the spelling cost only ever takes away). Beam search skips
        extensions that cannot make the beam even with it."""
        if self.weight < 0:
            return math.inf
        return max(0.0, 2 * (self.weight * self._max_log_prob + self.word_bonus))

    def root(self) -> FusionNode:
        return FusionNode(self.lm.begin(), 0.0, "", False)

    def extend(self, parent: FusionNode, token: int) -> FusionNode:
        state, score, partial, closed = parent
        piece = self.pieces[token]
        if piece.startswith(WORD_START):
            if partial and not closed:
                state, score = self._word(state, score, partial)
            partial, closed = piece[len(WORD_START) :], False
        else:
            partial += piece
            if closed:  # an unknown word goes on: its letters pay as they come
                score -= self.oov_penalty * len(piece)
        if partial and not closed and partial not in self.prefixes:
            state, score = self._word(state, score, UNK)
            score -= self.oov_penalty * len(partial)
            closed = True
        return FusionNode(state, score, partial, closed)

    def final(self, node: FusionNode) -> float:
        """The node's score once its last word and the sentence end."""
        state, score, partial, closed = node
        if partial and not closed:
            state, score = self._word(state, score, partial)
        return self._end(state, score)

    def sentence_score(self, words: Sequence[str]) -> float:
        """What fusion adds to the acoustic score of a finished hypothesis of
        these words: the weighted LM log-probability (sentence end included),
        the word bonus and the spelling cost of unknown words. Beam search
        with fusion maximises acoustic score plus this."""
        state, score = self.lm.begin(), 0.0
        for word in words:
            state, score = self._word(state, score, word)
        return self._end(state, score)

    def _end(self, state: State, score: float) -> float:
        """The score once the sentence ends after ``state``."""
        return score + self.weight * self.lm.score(state, EOS)[0]

    def _word(self, state: State, score: float, word: str) -> tuple[State, float]:
        """Scores a complete word (a prefix of vocabulary words may end as
        none of them: then it is ``<unk>`` and pays for its letters)."""
        log_p, state = self.lm.score(state, word)
        score += self.weight * log_p + self.word_bonus
        if word != UNK and (word,) not in self.lm.entries:
            score -= self.oov_penalty * len(word)
        return state, score
