"""Build a synthetic speech corpus: sentences x voices -> WAVs and manifests.

    python -m recipes.data.build_corpus --out data/asr --jobs 16
    python -m recipes.data.build_corpus --out data/asr --layout librispeech \\
        --text-file .carry/sentences.txt --long-form 2
    python -m recipes.data.build_corpus --out data/tts --layout ljspeech \\
        --voices flite:slt --sample-rate 0 --test-utts 0 --train-utts 5000

Splits (deterministic given ``--seed``):

* ``train`` - training voices reading training sentences;
* ``dev`` - training voices reading held-out sentences;
* ``test`` - held-out voices reading other held-out sentences;
* ``tune`` (only with ``--tune-voices``) - a third group of voices, in
  neither training nor test, reading the dev sentences: a set for choosing
  models (``recipes.asr.train --dev tune.jsonl``, means, rates) by how they
  read voices they never heard, without reading the test set.

Sentences are shuffled with the seed. The first of them are set aside as
test sentences and the next as dev sentences, ``--held-out-sentences T D``
of each (default 800 and 500, or ``--test-utts`` and ``--dev-utts`` where
those are more): the test split reads the first ``--test-utts`` test
sentences and dev the first ``--dev-utts`` dev sentences, and training never
reads a set-aside sentence, however few of them a build reads. So a
training build with ``--test-utts 200`` or ``0`` trains on none of the 800
test sentences an evaluation build reads, and ``--tune-voices`` read the
same dev sentences whatever ``--test-utts`` is. Training cycles through the
rest, followed by the sentences of ``--extra-train-text`` files
(training only, shuffled with the seed; any that a dev or test sentence also
has is dropped), so more text never changes the evaluation sets. With
``--extra-fraction F`` that share of the training utterances reads the extra
sentences and the rest the main text's, each cycling through its own pool,
whatever ``--train-utts`` is. Held-out
voices (``--heldout-voices``, see ``recipes.data.voices``) never appear in
train or dev; with the default
training voices their espeak-ng variants are left out of training altogether.
Training utterances are shared out evenly between voices, with a fraction
``--flite-fraction`` going to the flite voices, ``--festival-fraction`` to
the Festival voices, ``--pico-fraction`` (default 0: opt-in, Pico is in
Debian's non-free section) to the Pico voices (there are few of them, and
they are built from recordings of people, so they sound the most natural)
and ``--mbrola-fraction`` (default 0: opt-in, contrib and non-free) to the
MBROLA voices; espeak-ng voices read the rest.
Each utterance gets its own rate (130..210 words per minute) and pitch
(30..70) unless ``--prosody fixed``
(175 / 50, the default for ``--layout ljspeech``).
``--raised-ae-fraction F`` (default 0) has that share of the espeak-ng
training utterances speak with a raised /æ/ (``recipes.data.accent``; the
vowel and the system drawn per utterance), an accent no engine has; dev
and test are never changed, and at 0 the corpus is what it was without it.

Output (``--out``): ``train.jsonl``, ``dev.jsonl``, ``test.jsonl`` (and
``tune.jsonl``) with one
``{"audio", "duration", "text", "speaker"}`` per utterance (``audio``
relative to the folder, ``text`` the normalised sentence, ``speaker`` the
voice spec; ``"accent"`` as well where one was spoken), the WAVs in the
chosen ``--layout`` (``recipes.data.layouts``),
``corpus.json`` (settings, counts and engine timings) and, with
``--long-form N``, N recordings of at least ``--long-form-minutes`` in
``longform.jsonl`` (``recipes.data.longform``).

A voice that is not installed is skipped with a warning; an utterance an
engine fails on is skipped with a warning; the build goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recipes.data.accent import RAISED_AE_SYSTEMS, RAISED_AE_VOWELS, Accent
from recipes.data.layouts import Layout, PathPlanner, write_index_files
from recipes.data.longform import build_long_form
from recipes.data.sentences import FORTUNES_DIR, Sentence, load_sentences, shuffled
from recipes.data.synthesis import Job, Result, run_jobs
from recipes.data.voices import (
    DEFAULT_HELDOUT_VOICES,
    Voice,
    VoiceError,
    check_voice,
    default_training_voices,
)

__all__ = ["CorpusConfig", "build_corpus", "main", "plan_jobs"]

logger = logging.getLogger(__name__)

RATE_RANGE = (130, 210)  # words per minute
PITCH_RANGE = (30, 70)  # espeak-ng base pitch
# The sentences set aside for test and dev (--held-out-sentences): the project's
# evaluation corpus reads all of them (--test-utts 800 --dev-utts 500), and
# training builds with fewer test or dev utterances still train on none.
HELD_OUT_SENTENCES = (800, 500)
FIXED_RATE, FIXED_PITCH = 175, 50


@dataclass(frozen=True)
class CorpusConfig:
    out: Path
    voices: tuple[str, ...] = ()  # empty: the default training voices
    heldout_voices: tuple[str, ...] = DEFAULT_HELDOUT_VOICES
    train_utts: int = 20000
    dev_utts: int = 500
    test_utts: int = 500
    sample_rate: int = 16000  # 0 keeps each engine's rate
    layout: Layout = "flat"
    prosody: str = "varied"  # or "fixed"
    flite_fraction: float = 0.4
    festival_fraction: float = 0.15
    pico_fraction: float = 0.0  # Pico is opt-in (Debian non-free)
    mbrola_fraction: float = 0.0  # so is MBROLA (contrib and non-free)
    raised_ae_fraction: float = 0.0  # of the espeak-ng training utterances
    text_file: Path | None = None
    extra_train_text: tuple[Path, ...] = ()
    extra_fraction: float | None = None  # None: extra sentences follow the main ones
    tune_voices: tuple[str, ...] = ()  # read the dev sentences; never trained on
    # test and dev sentences set aside whatever test_utts and dev_utts read
    held_out_sentences: tuple[int, int] = HELD_OUT_SENTENCES
    fortunes_dir: Path = FORTUNES_DIR
    min_words: int = 3
    max_words: int = 30
    long_form: int = 0
    long_form_minutes: float = 10.0
    seed: int = 0
    draw: int = 0
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)


def _usable(specs: Sequence[str], role: str) -> list[Voice]:
    """Parse and check voices; unusable ones are skipped with a warning."""
    voices = []
    for spec in specs:
        try:
            voice = Voice.parse(spec)
            check_voice(voice)
        except VoiceError as error:
            logger.warning("skipping %s voice: %s", role, error)
            continue
        voices.append(voice)
    return voices


def _share_out(
    voices: Sequence[Voice], count: int, shares: Mapping[str, float] | None
) -> list[int]:
    """How many utterances each voice reads (largest remainders).

    ``shares`` gives some engines a fixed fraction of ``count``; the engines
    it leaves out split the rest; each engine's part is shared evenly between
    its voices. Fractions are renormalised over the engines present.
    """
    engines = Counter(v.engine for v in voices)
    weights = [1 / len(voices)] * len(voices)
    if shares is not None and len(engines) > 1:
        share = {e: shares[e] for e in engines if e in shares}
        others = [e for e in engines if e not in share]
        left = max(0.0, 1.0 - sum(share.values()))
        share.update({e: left / len(others) for e in others})
        total = sum(share.values())
        if total > 0:
            weights = [share[v.engine] / total / engines[v.engine] for v in voices]
    exact = [w * count for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(voices)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return counts


def _voice_sequence(
    voices: Sequence[Voice],
    count: int,
    shares: Mapping[str, float] | None,
    rng: random.Random,
) -> list[str]:
    counts = _share_out(voices, count, shares)
    sequence = [v.spec for v, n in zip(voices, counts, strict=True) for _ in range(n)]
    rng.shuffle(sequence)
    return sequence


def _mixed_train_pool(
    main: Sequence[Sentence], extra: Sequence[Sentence], config: CorpusConfig
) -> list[Sentence]:
    """One sentence per training utterance: ``extra_fraction`` of them from
    ``extra`` and the rest from ``main``, each pool cycled in its order (from
    a point that ``--draw`` moves, so that draws of fewer utterances than
    sentences read different ones), the two interleaved at random (seeded)."""
    count = config.train_utts
    n_extra = round(count * (config.extra_fraction or 0.0))
    if n_extra and not extra:
        raise ValueError("--extra-fraction: the extra text adds no new sentence")
    if count - n_extra and not main:
        raise ValueError(
            "--extra-fraction: the main text leaves no training sentence "
            "after the test and dev sentences set aside (--held-out-sentences)"
        )
    rng = random.Random(f"{config.seed}/extra/{config.draw}")
    picks = [True] * n_extra + [False] * (count - n_extra)
    rng.shuffle(picks)
    out: list[Sentence] = []
    used = {
        True: rng.randrange(len(extra)) if config.draw and extra else 0,
        False: rng.randrange(len(main)) if config.draw and main else 0,
    }
    for is_extra in picks:
        source = extra if is_extra else main
        out.append(source[used[is_extra] % len(source)])
        used[is_extra] += 1
    return out


def _held_out_spans(config: CorpusConfig, sentences: int) -> tuple[int, int]:
    """How many of the shuffled sentences are set aside for test and for dev:
    ``held_out_sentences``, or the utterance counts where those are more."""
    test_set_aside, dev_set_aside = config.held_out_sentences
    if min(test_set_aside, dev_set_aside, config.test_utts, config.dev_utts) < 0:
        raise ValueError(
            "--held-out-sentences, --test-utts and --dev-utts must be >= 0"
        )
    test_span = max(config.test_utts, test_set_aside)
    dev_span = max(config.dev_utts, dev_set_aside)
    if test_span + dev_span > sentences:
        raise ValueError(
            f"the text has {sentences} sentences, fewer than the {test_span} test "
            f"and {dev_span} dev sentences to set aside (--held-out-sentences, "
            "--test-utts, --dev-utts)"
        )
    return test_span, dev_span


def plan_jobs(
    sentences: Sequence[Sentence],
    train_voices: Sequence[Voice],
    heldout_voices: Sequence[Voice],
    config: CorpusConfig,
    planner: PathPlanner,
    extra_train: Sequence[Sentence] = (),
    tune_voices: Sequence[Voice] = (),
) -> tuple[list[Job], list[Sentence]]:
    """All utterances of the three splits and the test sentence pool.

    ``extra_train`` sentences are read after the training share of
    ``sentences`` (or mixed in at ``config.extra_fraction``), never by dev or
    test voices. ``tune_voices`` read the dev sentences, one utterance each."""
    pool = shuffled(list(sentences), config.seed)
    test_span, dev_span = _held_out_spans(config, len(pool))
    test_pool = pool[: config.test_utts]
    dev_pool = pool[test_span : test_span + config.dev_utts]
    main_pool = pool[test_span + dev_span :]
    extra_pool: list[Sentence] = []
    if extra_train:
        known = {s.key for s in pool}
        extra_pool = shuffled(
            [s for s in extra_train if s.key not in known], config.seed
        )
        logger.info(
            "%d extra training sentences (%d already in the main text)",
            len(extra_pool),
            len(extra_train) - len(extra_pool),
        )
    if extra_train and config.extra_fraction is not None:
        train_pool = _mixed_train_pool(main_pool, extra_pool, config)
    else:
        train_pool = main_pool + extra_pool
    if config.train_utts and not train_pool:
        raise ValueError(
            f"{len(pool)} sentences leave none for training after the "
            f"{test_span} test and {dev_span} dev sentences set aside "
            "(--held-out-sentences, --test-utts, --dev-utts)"
        )
    shares = {
        "flite": config.flite_fraction,
        "festival": config.festival_fraction,
        "pico": config.pico_fraction,
        "mbrola": config.mbrola_fraction,
    }
    plans = {
        "train": (train_voices, train_pool, config.train_utts, shares),
        "dev": (train_voices, dev_pool, len(dev_pool), shares),
        "test": (heldout_voices, test_pool, len(test_pool), None),
    }
    if tune_voices:
        if not dev_pool:
            raise ValueError(
                "--tune-voices read the dev sentences: need --dev-utts > 0"
            )
        plans["tune"] = (tune_voices, dev_pool, len(dev_pool), None)
    jobs = []
    for split, (voices, split_pool, count, split_shares) in plans.items():
        if count == 0:
            continue
        if not voices:
            raise ValueError(f"no usable voice for the {split} split")
        # --draw re-deals voices and prosody of the training split only; the
        # sentence split and the evaluation sets stay as the seed made them.
        key = f"{config.seed}/{split}"
        if split == "train" and config.draw:
            key += f"/draw{config.draw}"
        rng = random.Random(key)
        sequence = _voice_sequence(voices, count, split_shares, rng)
        for index, voice in enumerate(sequence):
            sentence = split_pool[index % len(split_pool)]
            prosody = random.Random(f"{key}/{index}")
            if config.prosody == "fixed":
                rate, pitch = FIXED_RATE, FIXED_PITCH
            else:
                rate, pitch = (
                    prosody.randint(*RATE_RANGE),
                    prosody.randint(*PITCH_RANGE),
                )
            accent = ""
            if (
                split == "train"
                and voice.startswith("espeak:")
                and config.raised_ae_fraction > 0
                and prosody.random() < config.raised_ae_fraction
            ):
                accent = Accent(
                    prosody.choice(RAISED_AE_VOWELS), prosody.choice(RAISED_AE_SYSTEMS)
                ).spec
            audio = planner.path(split, index, voice)
            jobs.append(
                Job(
                    split,
                    index,
                    voice,
                    sentence.raw,
                    sentence.text,
                    rate,
                    pitch,
                    audio,
                    accent,
                )
            )
    return jobs, test_pool


def _write_manifests(
    root: Path, results: Sequence[Result], tune: bool = False
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for split in ("train", "dev", "test", *(("tune",) if tune else ())):
        rows = [r for r in results if r.job.split == split and not r.error]
        with (root / f"{split}.jsonl").open("w", encoding="utf-8") as file:
            for r in rows:
                row = {
                    "audio": r.job.audio,
                    "duration": round(r.duration, 4),
                    "text": r.job.text,
                    "speaker": r.job.voice,
                }
                if r.job.accent:
                    row["accent"] = r.job.accent
                file.write(json.dumps(row) + "\n")
        counts[split] = len(rows)
    return counts


def _engine_timings(results: Sequence[Result]) -> dict[str, dict[str, float]]:
    totals: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for r in results:
        if r.error:
            continue
        entry = totals[r.job.voice.partition(":")[0]]
        entry[0] += 1
        entry[1] += r.engine_seconds
        entry[2] += r.total_seconds
        entry[3] += r.duration
    return {
        engine: {
            "utterances": n,
            "audio_seconds": round(audio, 1),
            "engine_ms_per_utterance": round(1000 * engine_s / n, 2),
            "total_ms_per_utterance": round(1000 * total_s / n, 2),
            "realtime_factor": round(audio / max(total_s, 1e-9), 1),
        }
        for engine, (n, engine_s, total_s, audio) in totals.items()
    }


def _report_failures(results: Sequence[Result]) -> int:
    failures = [r for r in results if r.error]
    for r in failures[:5]:
        logger.warning("skipped %s %r: %s", r.job.voice, r.job.text[:60], r.error)
    if len(failures) > 5:
        per_voice = Counter(r.job.voice for r in failures)
        logger.warning(
            "%d utterances failed in all: %s", len(failures), dict(per_voice)
        )
    return len(failures)


def _jsonable(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def build_corpus(config: CorpusConfig) -> dict:
    """Build the corpus described by ``config``; returns the ``corpus.json`` data."""
    start = time.perf_counter()
    root = config.out
    root.mkdir(parents=True, exist_ok=True)
    heldout = _usable(config.heldout_voices, "held-out")
    tune = _usable(config.tune_voices, "tuning")
    if config.tune_voices and not tune:
        raise ValueError("no usable --tune-voices (see the warnings above)")
    if config.voices:
        train = _usable(config.voices, "training")
    else:  # the default grid, less what is not installed here
        defaults = default_training_voices(
            [Voice.parse(s) for s in (*config.heldout_voices, *config.tune_voices)]
        )
        opt_in = {"pico": config.pico_fraction, "mbrola": config.mbrola_fraction}
        defaults = [v for v in defaults if opt_in.get(v.engine, 1.0) > 0]
        train = _usable([v.spec for v in defaults], "training")
    groups = [
        ("training", train, "held out", heldout),
        ("training", train, "tuning", tune),
        ("held-out", heldout, "tuning", tune),
    ]
    for name, group, other_name, other in groups:
        overlap = sorted({v.spec for v in group} & {v.spec for v in other})
        if overlap:
            raise ValueError(
                f"voices both in {name} and {other_name}: {', '.join(overlap)}"
            )
    if config.layout == "ljspeech" and len(train) != 1:
        raise ValueError("--layout ljspeech is for one training voice (--voices)")
    sentences = load_sentences(
        config.text_file,
        config.fortunes_dir,
        config.min_words,
        config.max_words,
        config.jobs,
    )
    extra_train = [
        sentence
        for path in config.extra_train_text
        for sentence in load_sentences(
            path, config.fortunes_dir, config.min_words, config.max_words, config.jobs
        )
    ]
    planner = PathPlanner(config.layout, [v.spec for v in [*train, *heldout, *tune]])
    jobs, test_pool = plan_jobs(
        sentences, train, heldout, config, planner, extra_train, tune
    )
    logger.info(
        "%d utterances, %d training and %d held-out voices, %d jobs",
        len(jobs),
        len(train),
        len(heldout),
        config.jobs,
    )
    results = run_jobs(jobs, root, config.sample_rate, config.jobs)
    failed = _report_failures(results)
    good = [r for r in results if not r.error]
    counts = _write_manifests(root, good, tune=bool(tune))
    write_index_files(root, config.layout, good, planner.speaker_ids)
    long_form = build_long_form(
        root,
        test_pool,
        [v.spec for v in heldout],
        config.long_form,
        config.long_form_minutes,
        config.sample_rate,
        config.seed,
        config.jobs,
    )
    summary = {
        "config": {k: _jsonable(v) for k, v in asdict(config).items()},
        "counts": counts,
        "accented": {
            split: sum(1 for r in good if r.job.split == split and r.job.accent)
            for split in counts
        },
        "failed": failed,
        "hours": {
            split: round(
                sum(r.duration for r in good if r.job.split == split) / 3600, 3
            )
            for split in counts
        },
        "long_form": [
            {"audio": r["audio"], "duration": r["duration"]} for r in long_form
        ],
        "training_voices": [v.spec for v in train],
        "heldout_voices": [v.spec for v in heldout],
        "tune_voices": [v.spec for v in tune],
        "engines": _engine_timings(results),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (root / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.data.build_corpus",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See recipes/data/README.md.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--text-file", type=Path, help="one sentence per line (else fortunes)"
    )
    p.add_argument("--fortunes-dir", type=Path, default=FORTUNES_DIR)
    p.add_argument(
        "--extra-train-text",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="more sentences for training only, one per line (.gz too), e.g. "
        "python -m recipes.data.sentences --source wordnet",
    )
    p.add_argument(
        "--tune-voices",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="voices in neither training nor test that read the dev sentences "
        "into tune.jsonl, for choosing models on unseen voices "
        "(e.g. mbrola:us1 mbrola:us2 mbrola:us3 mbrola:en1)",
    )
    p.add_argument(
        "--extra-fraction",
        type=float,
        metavar="F",
        help="share of the training utterances that read --extra-train-text "
        "sentences (default: they follow the main text's training sentences)",
    )
    p.add_argument(
        "--voices",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="training voices, e.g. flite:slt espeak:en-us+f3 (default: the grid)",
    )
    p.add_argument(
        "--heldout-voices",
        nargs="*",
        default=list(DEFAULT_HELDOUT_VOICES),
        metavar="SPEC",
        help="test-only voices (default: %(default)s)",
    )
    p.add_argument("--train-utts", type=int, default=20000)
    p.add_argument("--dev-utts", type=int, default=500)
    p.add_argument("--test-utts", type=int, default=500)
    p.add_argument(
        "--held-out-sentences",
        type=int,
        nargs=2,
        metavar=("TEST", "DEV"),
        default=list(HELD_OUT_SENTENCES),
        help="sentences set aside for test and dev, never trained on, however "
        "few --test-utts and --dev-utts read (default: %(default)s)",
    )
    p.add_argument(
        "--sample-rate",
        type=int,
        default=16000,
        help="output rate; 0 keeps the engine's (flite 16000, espeak-ng 22050)",
    )
    p.add_argument(
        "--layout", choices=["flat", "librispeech", "ljspeech"], default="flat"
    )
    p.add_argument(
        "--prosody",
        choices=["varied", "fixed"],
        help="per-utterance rate and pitch (default: varied; fixed for ljspeech)",
    )
    p.add_argument(
        "--flite-fraction",
        type=float,
        default=0.4,
        help="share of training utterances read by flite voices (default 0.4)",
    )
    p.add_argument(
        "--festival-fraction",
        type=float,
        default=0.15,
        help="share read by Festival voices (default 0.15)",
    )
    p.add_argument(
        "--pico-fraction",
        type=float,
        default=0.0,
        help="share read by Pico voices (default 0: none; they join the default "
        "voices when this is above 0)",
    )
    p.add_argument(
        "--mbrola-fraction",
        type=float,
        default=0.0,
        help="share read by MBROLA voices (default 0: none, as for Pico); "
        "espeak-ng reads the rest",
    )
    p.add_argument(
        "--raised-ae-fraction",
        type=float,
        default=0.0,
        help="share of the espeak-ng training utterances spoken with a raised "
        "/ae/ (recipes.data.accent; default 0: none)",
    )
    p.add_argument("--min-words", type=int, default=3)
    p.add_argument("--max-words", type=int, default=30)
    p.add_argument(
        "--long-form",
        type=int,
        default=0,
        metavar="N",
        help="also write N long recordings of held-out test speech",
    )
    p.add_argument("--long-form-minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--draw",
        type=int,
        default=0,
        help="another deal of voices and prosody for the training split "
        "(same sentences; dev and test unchanged): fresh audio for a new stage",
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    return p


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    fractions = (
        args.flite_fraction,
        args.festival_fraction,
        args.pico_fraction,
        args.mbrola_fraction,
    )
    if min(fractions) < 0 or sum(fractions) > 1:
        parser.error(
            "--flite-fraction, --festival-fraction, --pico-fraction and "
            "--mbrola-fraction must be >= 0 and sum to <= 1"
        )
    if not 0 <= args.raised_ae_fraction <= 1:
        parser.error("--raised-ae-fraction must be between 0 and 1")
    if args.extra_fraction is not None and not (
        args.extra_train_text and 0 <= args.extra_fraction <= 1
    ):
        parser.error("--extra-fraction needs --extra-train-text and 0 <= F <= 1")
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("speech.text").setLevel(logging.ERROR)
    prosody = args.prosody or ("fixed" if args.layout == "ljspeech" else "varied")
    config = CorpusConfig(
        out=args.out,
        voices=tuple(args.voices),
        heldout_voices=tuple(args.heldout_voices),
        train_utts=args.train_utts,
        dev_utts=args.dev_utts,
        test_utts=args.test_utts,
        sample_rate=args.sample_rate,
        layout=args.layout,
        prosody=prosody,
        flite_fraction=args.flite_fraction,
        festival_fraction=args.festival_fraction,
        pico_fraction=args.pico_fraction,
        mbrola_fraction=args.mbrola_fraction,
        raised_ae_fraction=args.raised_ae_fraction,
        text_file=args.text_file,
        extra_train_text=tuple(args.extra_train_text),
        extra_fraction=args.extra_fraction,
        tune_voices=tuple(args.tune_voices),
        held_out_sentences=tuple(args.held_out_sentences),
        fortunes_dir=args.fortunes_dir,
        min_words=args.min_words,
        max_words=args.max_words,
        long_form=args.long_form,
        long_form_minutes=args.long_form_minutes,
        seed=args.seed,
        draw=args.draw,
        jobs=args.jobs,
    )
    try:
        summary = build_corpus(config)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("counts", "accented", "failed", "hours", "engines", "seconds")
            }
        )
    )


if __name__ == "__main__":
    main()
