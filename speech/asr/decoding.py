"""CTC decoding, endpointing and word timestamps, in numpy (no torch).

Shared by the PyTorch and ONNX Runtime back ends: everything here consumes
(T, V) log-probabilities, T encoder frames (80 ms each for ChunkFormer) by V
tokens, blank at id 0 unless told otherwise.

- ``ctc_greedy``: best token per frame, repeats merged, blanks dropped.
- ``ctc_prefix_beam_search``: the standard CTC prefix beam search in log
  space. Per frame only the ``beam_size`` most likely tokens above
  ``prune_threshold`` are tried. Each prefix also carries its best (Viterbi)
  alignment, which gives every token of every hypothesis its frames.
- ``StreamingCtcDecoder``: either of the two fed chunk by chunk (the result
  equals the offline one on the concatenated input), with an ``Endpointer``
  that closes a segment after enough trailing blank frames (WeNet/sherpa
  style rules) and starts a new one. Frame indices are absolute: they count
  from the first frame the decoder ever saw.
- ``words_with_times`` and ``segments_from_words``: token hits to timed words
  and segments, with the result types of ``speech.formats``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

import numpy as np

from speech.formats import Segment, Word

if TYPE_CHECKING:
    from speech.asr.lm import FusionNode, LmFusion

__all__ = [
    "DEFAULT_ENDPOINT_RULES",
    "DecodedSegment",
    "EndpointRule",
    "Endpointer",
    "Hypothesis",
    "PieceLookup",
    "StreamingCtcDecoder",
    "TokenHit",
    "ctc_greedy",
    "ctc_prefix_beam_search",
    "decoded_to_segment",
    "segments_from_words",
    "words_with_times",
]

FRAME_SHIFT = 0.08  # seconds per ChunkFormer encoder frame (10 ms x 8)
PRUNE_THRESHOLD = -10.0  # log-prob below which a token is not tried (p < 4.5e-5)
_NEG_INF = float("-inf")


class TokenHit(NamedTuple):
    """One emitted token: its id, first and last frame (inclusive), and the
    best log-probability it had on one of those frames."""

    token: int
    start_frame: int
    end_frame: int
    log_prob: float


class Hypothesis(NamedTuple):
    """A decoded token sequence.

    ``score`` is the log-probability of the token sequence: summed over all
    alignments for beam search, of the single best path for greedy decoding.
    ``hits`` has one entry per token, from its best alignment.
    """

    tokens: tuple[int, ...]
    score: float
    hits: tuple[TokenHit, ...]


def _log_add(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == _NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def _check_log_probs(log_probs: np.ndarray) -> np.ndarray:
    log_probs = np.asarray(log_probs)
    if log_probs.ndim != 2:
        raise ValueError(f"expected (T, V) log-probabilities, got {log_probs.shape}")
    return log_probs


# ------------------------------------------------------------------ greedy


def ctc_greedy(
    log_probs: np.ndarray, blank: int = 0, frame_offset: int = 0
) -> list[TokenHit]:
    """Best token per frame; runs of one token merge; blanks separate repeats.

    Example (V = 3, blank 0; argmax per frame 1 1 0 1 2 2):
        >>> lp = np.log(np.eye(3)[[1, 1, 0, 1, 2, 2]] * 0.9 + 0.1 / 3)
        >>> [(h.token, h.start_frame, h.end_frame) for h in ctc_greedy(lp)]
        [(1, 0, 1), (1, 3, 3), (2, 4, 5)]
    """
    log_probs = _check_log_probs(log_probs)
    if len(log_probs) == 0:
        return []
    best = log_probs.argmax(axis=1)  # (T,)
    best_log_prob = np.take_along_axis(log_probs, best[:, None], axis=1)[:, 0]
    starts = np.flatnonzero(np.concatenate([[True], best[1:] != best[:-1]]))
    ends = np.concatenate([starts[1:], [len(best)]]) - 1
    peaks = np.maximum.reduceat(best_log_prob, starts)
    return [
        TokenHit(int(best[s]), int(s) + frame_offset, int(e) + frame_offset, float(p))
        for s, e, p in zip(starts, ends, peaks, strict=True)
        if best[s] != blank
    ]


class _GreedySearch:
    """Greedy decoding that can be fed chunk by chunk."""

    def __init__(self, blank: int) -> None:
        self.blank = blank
        self.hits: list[TokenHit] = []
        self.score = 0.0
        self._last_token = -1  # argmax of the previous frame

    def step(self, log_probs: np.ndarray, frame_offset: int) -> None:
        if len(log_probs) == 0:
            return
        self.score += float(log_probs.max(axis=1).sum())
        new = ctc_greedy(log_probs, self.blank, frame_offset)
        first_token = int(log_probs[0].argmax())
        if new and self.hits and first_token == self._last_token == new[0].token:
            if new[0].start_frame == frame_offset:  # the run goes on across chunks
                last = self.hits.pop()
                head = new.pop(0)
                merged = max(last.log_prob, head.log_prob)
                self.hits.append(
                    last._replace(end_frame=head.end_frame, log_prob=merged)
                )
        self.hits.extend(new)
        self._last_token = int(log_probs[-1].argmax())

    def nbest(self) -> list[Hypothesis]:
        tokens = tuple(h.token for h in self.hits)
        return [Hypothesis(tokens, self.score, tuple(self.hits))]


# ------------------------------------------------------------- beam search


class _Node:
    """A prefix in the prefix tree: its last token, its parent and, with a
    language model, its ``LmFusion`` node (state, fused score, open word)."""

    __slots__ = ("lm", "parent", "token")

    def __init__(
        self, parent: _Node | None, token: int, lm: FusionNode | None = None
    ) -> None:
        self.parent = parent
        self.token = token
        self.lm = lm

    def tokens(self) -> tuple[int, ...]:
        out = []
        node: _Node | None = self
        while node is not None and node.parent is not None:
            out.append(node.token)
            node = node.parent
        return tuple(reversed(out))


# An alignment is a persistent linked list of hits, newest first:
# (previous alignment, token, start frame, end frame, best log-prob) or None.
_Alignment = tuple | None


def _alignment_hits(alignment: _Alignment) -> tuple[TokenHit, ...]:
    hits = []
    while alignment is not None:
        previous, token, start, end, log_prob = alignment
        hits.append(TokenHit(token, start, end, log_prob))
        alignment = previous
    return tuple(reversed(hits))


class _PrefixState:
    """Probabilities of one prefix: total (b: ends in blank, nb: ends in its
    last token) and Viterbi (best single path) with that path's alignment."""

    __slots__ = ("p_b", "p_nb", "v_b", "v_nb", "align_b", "align_nb")

    def __init__(self) -> None:
        self.p_b = self.p_nb = self.v_b = self.v_nb = _NEG_INF
        self.align_b: _Alignment = None
        self.align_nb: _Alignment = None

    @property
    def total(self) -> float:
        return _log_add(self.p_b, self.p_nb)

    def best_alignment(self) -> tuple[float, _Alignment]:
        if self.v_b >= self.v_nb:
            return self.v_b, self.align_b
        return self.v_nb, self.align_nb


class _PrefixBeamSearch:
    """CTC prefix beam search that can be fed chunk by chunk, optionally
    with a word language model fused in (``speech.asr.lm.LmFusion``): a
    prefix then ranks by its CTC score plus its words' fused LM score."""

    def __init__(
        self,
        beam_size: int,
        blank: int,
        prune_threshold: float,
        fusion: LmFusion | None = None,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        self.beam_size = beam_size
        self.blank = blank
        self.prune_threshold = prune_threshold
        self.fusion = fusion
        root = _PrefixState()
        root.p_b = root.v_b = 0.0
        lm = fusion.root() if fusion is not None else None
        self.beam: dict[_Node, _PrefixState] = {_Node(None, -1, lm): root}

    def _candidates(self, log_probs: np.ndarray) -> list[list[tuple[int, float]]]:
        """Per frame, the tokens worth trying: the top ``beam_size`` above the
        threshold, and always the best one."""
        k = min(self.beam_size, log_probs.shape[1])
        if k < log_probs.shape[1]:
            top = np.argpartition(-log_probs, k - 1, axis=1)[:, :k]  # (T, k)
        else:
            top = np.broadcast_to(np.arange(k), log_probs.shape)
        top_log_probs = np.take_along_axis(log_probs, top, axis=1)
        keep = top_log_probs >= self.prune_threshold
        keep[np.arange(len(top)), top_log_probs.argmax(axis=1)] = True
        return [
            list(zip(t[m].tolist(), p[m].tolist(), strict=True))
            for t, p, m in zip(top, top_log_probs, keep, strict=True)
        ]

    def step(self, log_probs: np.ndarray, frame_offset: int) -> None:
        for t, candidates in enumerate(self._candidates(log_probs), frame_offset):
            self.beam = self._extend(self.beam, candidates, t)

    def _extend(
        self,
        beam: dict[_Node, _PrefixState],
        candidates: list[tuple[int, float]],
        t: int,
    ) -> dict[_Node, _PrefixState]:
        """One frame: every prefix of the beam times every candidate token."""
        # Prefixes in the beam by (parent, token), so that an extension that
        # reaches one of them merges with it instead of duplicating it.
        nodes = {(node.parent, node.token): node for node in beam}
        new_beam: dict[_Node, _PrefixState] = {}
        # With an LM, new prefixes wait for their LM node until every CTC
        # score of the frame is known; only those that can make the beam get
        # one (``_fuse_pending``).
        gain = math.inf if self.fusion is None else self.fusion.max_gain
        lazy = gain < math.inf
        pending: list[_Node] = []
        for node, old in beam.items():
            total = old.total
            best_v, best_align = old.best_alignment()
            for token, log_prob in candidates:
                if token == self.blank:
                    new = new_beam.get(node) or new_beam.setdefault(
                        node, _PrefixState()
                    )
                    new.p_b = _log_add(new.p_b, total + log_prob)
                    if best_v + log_prob > new.v_b:
                        new.v_b, new.align_b = best_v + log_prob, best_align
                    continue
                if token == node.token:
                    # The last token goes on (no blank in between) ...
                    if old.p_nb > _NEG_INF:
                        new = new_beam.get(node) or new_beam.setdefault(
                            node, _PrefixState()
                        )
                        new.p_nb = _log_add(new.p_nb, old.p_nb + log_prob)
                        if old.v_nb + log_prob > new.v_nb:
                            previous, _, start, _, peak = old.align_nb
                            new.v_nb = old.v_nb + log_prob
                            new.align_nb = (
                                previous, token, start, t, max(peak, log_prob)
                            )  # fmt: skip
                    # ... or, after a blank, is repeated.
                    source_p, source_v, source_align = old.p_b, old.v_b, old.align_b
                else:
                    source_p, source_v, source_align = total, best_v, best_align
                if source_p == _NEG_INF:
                    continue
                child = nodes.get((node, token))
                if child is None:
                    if lazy:
                        child = _Node(node, token)
                        pending.append(child)
                    else:
                        lm = (
                            None
                            if self.fusion is None
                            else self.fusion.extend(node.lm, token)
                        )
                        child = _Node(node, token, lm)
                    nodes[(node, token)] = child
                new = new_beam.get(child) or new_beam.setdefault(child, _PrefixState())
                new.p_nb = _log_add(new.p_nb, source_p + log_prob)
                if source_v + log_prob > new.v_nb:
                    new.v_nb = source_v + log_prob
                    new.align_nb = (source_align, token, t, t, log_prob)

        items = new_beam.items()
        if pending:
            self._fuse_pending(new_beam, pending, gain)
            items = [item for item in items if item[0].lm is not None]
        ranked = sorted(items, key=self._rank, reverse=True)
        return dict(ranked[: self.beam_size])

    def _fuse_pending(
        self, new_beam: dict[_Node, _PrefixState], pending: list[_Node], gain: float
    ) -> None:
        """Gives LM nodes to the new prefixes that may make the beam, best
        bound first: a prefix's rank is at most its CTC score plus its
        parent's fused score plus ``gain`` (``LmFusion.max_gain``), so once
        that bound falls below the ``beam_size``-th best rank known, no later
        prefix can make the beam. The others keep no LM node and are dropped,
        which leaves the beam exactly as if every prefix had been scored."""
        fusion = self.fusion
        assert fusion is not None
        best: list[float] = []  # min-heap of the beam_size best ranks so far

        def note(rank: float) -> None:
            if len(best) < self.beam_size:
                heapq.heappush(best, rank)
            elif rank > best[0]:
                heapq.heapreplace(best, rank)

        for node, state in new_beam.items():
            if node.lm is not None:
                note(state.total + node.lm.score)
        bounds = sorted(
            (
                (new_beam[child].total + child.parent.lm.score, index)  # type: ignore[union-attr]
                for index, child in enumerate(pending)
            ),
            reverse=True,
        )
        for bound, index in bounds:
            if len(best) == self.beam_size and bound + gain < best[0]:
                break
            child = pending[index]
            child.lm = fusion.extend(child.parent.lm, child.token)  # type: ignore[union-attr]
            note(new_beam[child].total + child.lm.score)

    def _rank(self, item: tuple[_Node, _PrefixState]) -> float:
        """A prefix's score in the beam: CTC, plus its words' fused LM score."""
        node, state = item
        return state.total if node.lm is None else state.total + node.lm.score

    def nbest(self) -> list[Hypothesis]:
        """The beam's hypotheses, best first; with a language model, scores
        include every word's fused LM score and the sentence end's."""
        hypotheses = []
        for node, state in self.beam.items():
            _, alignment = state.best_alignment()
            score = state.total
            if self.fusion is not None:
                score += self.fusion.final(node.lm)
            hypotheses.append(
                Hypothesis(node.tokens(), score, _alignment_hits(alignment))
            )
        return sorted(hypotheses, key=lambda h: h.score, reverse=True)


def ctc_prefix_beam_search(
    log_probs: np.ndarray,
    beam_size: int = 8,
    blank: int = 0,
    prune_threshold: float = PRUNE_THRESHOLD,
    frame_offset: int = 0,
    fusion: LmFusion | None = None,
) -> list[Hypothesis]:
    """N-best token sequences of (T, V) CTC log-probabilities, best first.

    Scores are log P(tokens | input) summed over the alignments the beam
    kept. Per frame, only the ``beam_size`` most likely tokens with a
    log-probability of at least ``prune_threshold`` are tried (the most likely
    one always is). Token frames come from each prefix's best alignment.
    With ``fusion``, prefixes rank by CTC score plus fused word LM score.
    """
    log_probs = _check_log_probs(log_probs)
    search = _PrefixBeamSearch(beam_size, blank, prune_threshold, fusion)
    search.step(log_probs, frame_offset)
    return search.nbest()


# ------------------------------------------------------------- endpointing


@dataclass(frozen=True)
class EndpointRule:
    """Close the segment when all three hold: something non-blank was seen
    (if ``must_contain_speech``), the trailing blank run lasts at least
    ``min_trailing_silence`` seconds, and the segment at least
    ``min_utterance_length`` seconds."""

    must_contain_speech: bool
    min_trailing_silence: float
    min_utterance_length: float


DEFAULT_ENDPOINT_RULES = (
    EndpointRule(False, 5.0, 0.0),  # rule 1: long silence, nothing said
    EndpointRule(True, 1.0, 0.0),  # rule 2: a pause after speech
    EndpointRule(False, 0.0, 20.0),  # rule 3: the segment is long enough
)


class Endpointer:
    """Decides where segments end, from which frames' best token is blank.

    ``update`` consumes frames until a rule fires and returns how many it
    consumed (the firing frame included), or None when none fired; after
    a firing, call ``reset`` and pass the remaining frames again.

    Example (0.08 s frames; rule 2 needs 1 s = 13 frames of blank after speech):
        >>> endpointer = Endpointer()
        >>> endpointer.update(np.array([True] * 5 + [False] * 3 + [True] * 20))
        21
    """

    def __init__(
        self,
        rules: Sequence[EndpointRule] = DEFAULT_ENDPOINT_RULES,
        frame_shift: float = FRAME_SHIFT,
    ) -> None:
        self.frame_shift = frame_shift
        # Durations to frame counts once, rounding up: "at least N seconds".
        self._rules = [
            (
                rule.must_contain_speech,
                math.ceil(rule.min_trailing_silence / frame_shift - 1e-9),
                math.ceil(rule.min_utterance_length / frame_shift - 1e-9),
            )
            for rule in rules
        ]
        self.reset()

    def reset(self) -> None:
        self.num_frames = 0  # frames in the current segment
        self.trailing_silence = 0  # blank frames at its end
        self.has_speech = False

    def update(self, is_blank: np.ndarray) -> int | None:
        """(T,) bool, True where the frame's best token is blank."""
        for index, blank in enumerate(np.asarray(is_blank, dtype=bool).tolist()):
            self.num_frames += 1
            if blank:
                self.trailing_silence += 1
            else:
                self.trailing_silence = 0
                self.has_speech = True
            for must_contain_speech, min_silence, min_length in self._rules:
                if (
                    (self.has_speech or not must_contain_speech)
                    and self.trailing_silence >= min_silence
                    and self.num_frames >= min_length
                ):
                    return index + 1
        return None


# ------------------------------------------------------------- streaming


class DecodedSegment(NamedTuple):
    """A closed segment: its n-best (best first) and its frames [start, end)."""

    nbest: list[Hypothesis]
    start_frame: int
    end_frame: int

    @property
    def best(self) -> Hypothesis:
        return self.nbest[0]


class StreamingCtcDecoder:
    """Greedy or beam CTC decoding of log-probabilities arriving in chunks.

    ``accept`` returns the segments that the endpointer closed inside the
    chunk (usually none); segments with no tokens are dropped silently.
    ``partial`` is the current segment's best hypothesis so far; ``finish``
    closes the last segment at the end of the stream. Frames are counted
    from the first frame ever accepted, across segments.
    """

    def __init__(
        self,
        mode: Literal["greedy", "beam"] = "greedy",
        *,
        beam_size: int = 8,
        blank: int = 0,
        prune_threshold: float = PRUNE_THRESHOLD,
        endpointer: Endpointer | None = None,
        fusion: LmFusion | None = None,
    ) -> None:
        if mode not in ("greedy", "beam"):
            raise ValueError(f"mode must be 'greedy' or 'beam', got {mode!r}")
        if fusion is not None and mode != "beam":
            raise ValueError("a language model needs beam search (mode='beam')")
        self.fusion = fusion
        self.mode = mode
        self.beam_size = beam_size
        self.blank = blank
        self.prune_threshold = prune_threshold
        self.endpointer = endpointer
        self.num_frames = 0  # frames accepted so far, all segments
        self._start_segment(0)

    def _start_segment(self, start_frame: int) -> None:
        self.segment_start = start_frame
        if self.mode == "greedy":
            self._search: _GreedySearch | _PrefixBeamSearch = _GreedySearch(self.blank)
        else:
            self._search = _PrefixBeamSearch(
                self.beam_size, self.blank, self.prune_threshold, self.fusion
            )
        if self.endpointer is not None:
            self.endpointer.reset()

    def accept(self, log_probs: np.ndarray) -> list[DecodedSegment]:
        """Decode a (T, V) chunk; return the segments closed within it."""
        log_probs = _check_log_probs(log_probs)
        closed = []
        while len(log_probs):
            used = None
            if self.endpointer is not None:
                is_blank = log_probs.argmax(axis=1) == self.blank
                used = self.endpointer.update(is_blank)
            head = log_probs if used is None else log_probs[:used]
            self._search.step(head, self.num_frames)
            self.num_frames += len(head)
            if used is None:
                break
            segment = self._close()
            if segment is not None:
                closed.append(segment)
            log_probs = log_probs[used:]
        return closed

    def _close(self) -> DecodedSegment | None:
        nbest = self._search.nbest()
        segment = DecodedSegment(nbest, self.segment_start, self.num_frames)
        self._start_segment(self.num_frames)
        return segment if nbest[0].tokens else None

    @property
    def partial(self) -> Hypothesis:
        """The best hypothesis of the open segment (absolute frames)."""
        return self._search.nbest()[0]

    def nbest(self) -> list[Hypothesis]:
        """The open segment's hypotheses, best first."""
        return self._search.nbest()

    def finish(self) -> DecodedSegment | None:
        """Close the open segment (end of input); None if it has no tokens."""
        return self._close()


# ---------------------------------------------------------------- timing


class PieceLookup(Protocol):
    """What timing needs from a tokenizer (``speech.asr.tokenizer.Tokenizer``)."""

    def id_to_piece(self, token_id: int) -> str: ...


_WORD_START = "\u2581"


def words_with_times(
    hits: Sequence[TokenHit],
    tokenizer: PieceLookup,
    frame_shift: float = FRAME_SHIFT,
    offset_frames: int = 0,
) -> list[Word]:
    """Group token hits into words at pieces starting with "▁".

    A word starts at its first token's first frame and ends after its last
    token's last frame; confidence is the mean probability of its tokens at
    their best frames. A first piece without "▁" still starts a word.
    """
    words: list[Word] = []
    pieces: list[str] = []
    group: list[TokenHit] = []

    def flush() -> None:
        text = "".join(pieces).replace(_WORD_START, "")
        if text:
            confidence = sum(math.exp(h.log_prob) for h in group) / len(group)
            words.append(
                Word(
                    text=text,
                    start=(group[0].start_frame + offset_frames) * frame_shift,
                    end=(group[-1].end_frame + 1 + offset_frames) * frame_shift,
                    confidence=confidence,
                )
            )
        pieces.clear()
        group.clear()

    for hit in hits:
        piece = tokenizer.id_to_piece(hit.token)
        if piece.startswith(_WORD_START) and pieces:
            flush()
        pieces.append(piece)
        group.append(hit)
    if pieces:
        flush()
    return words


def segments_from_words(
    words: Sequence[Word], max_gap: float = 1.0, max_duration: float | None = 30.0
) -> list[Segment]:
    """Split words into segments at pauses longer than ``max_gap`` seconds and
    before a segment would last more than ``max_duration`` seconds."""
    segments: list[Segment] = []
    current: list[Word] = []
    for word in words:
        if current and (
            word.start - current[-1].end > max_gap
            or (max_duration is not None and word.end - current[0].start > max_duration)
        ):
            segments.append(_segment(current))
            current = []
        current.append(word)
    if current:
        segments.append(_segment(current))
    return segments


def _segment(words: list[Word]) -> Segment:
    text = " ".join(word.text for word in words)
    return Segment(text=text, start=words[0].start, end=words[-1].end, words=words)


def decoded_to_segment(
    decoded: DecodedSegment, tokenizer: PieceLookup, frame_shift: float = FRAME_SHIFT
) -> Segment:
    """A closed streaming segment as a ``Segment`` spanning its words.

    Falls back to the endpointed frame span when there are no words.
    """
    words = words_with_times(decoded.best.hits, tokenizer, frame_shift)
    if words:
        return _segment(words)
    start, end = decoded.start_frame * frame_shift, decoded.end_frame * frame_shift
    return Segment(text="", start=start, end=end, words=[])
