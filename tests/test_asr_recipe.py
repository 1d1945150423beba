"""The ASR training recipe on CPU: it trains, checkpoints, and a resumed run
continues exactly where an uninterrupted one would be."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from recipes.asr import train
from speech.asr.model import load_model

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine",
    "all that glitters is not gold",
    "actions speak louder than words",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for voice in ["kal16", "slt"]:
        for i, text in enumerate(SENTENCES):
            wav = root / f"{voice}-{i}.wav"
            subprocess.run(
                ["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True
            )
            rows.append(
                {
                    "audio": wav.name,
                    "duration": 2.0,
                    "text": text,
                    "speaker": f"flite:{voice}",
                }
            )
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "train.jsonl"


def _run(manifest: Path, out: Path, max_steps: int, *extra: str) -> None:
    train.main(
        [
            "--train",
            str(manifest),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--vocab-size",
            "40",
            "--d-model",
            "32",
            "--num-heads",
            "2",
            "--ffn-dim",
            "48",
            "--num-layers",
            "2",
            "--total-steps",
            "8",
            "--max-steps",
            str(max_steps),
            "--batch-seconds",
            "9",
            "--workers",
            "0",
            "--save-every",
            "100",
            "--log-every",
            "1",
            "--warmup",
            "2",
            "--deterministic",
            "--join-fraction",
            "0.5",
            *extra,  # later options win
        ]
    )


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_is_exact(corpus, tmp_path, workers) -> None:
    # with loader workers (kept for the whole run), across an epoch boundary
    steps = 6 if workers == "0" else 10
    _run(corpus, tmp_path / "straight", steps, "--workers", workers)
    _run(corpus, tmp_path / "resumed", 3, "--workers", workers)
    first = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert first["step"] == 3
    _run(corpus, tmp_path / "resumed", steps, "--workers", workers)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == steps
    if workers != "0":
        assert a["epoch"] == b["epoch"] >= 1
    for name, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][name], rtol=0, atol=0, msg=name)
    # the exported model folder loads on its own and decodes something
    model = load_model(tmp_path / "resumed" / "model")
    assert model.tokenizer is not None and model.config.vocab_size == 40


def test_best_dev_model_is_kept(corpus, tmp_path, monkeypatch) -> None:
    """out/best holds the weights of the evaluation with the lowest mean dev
    WER (here the one at step 4 of 6), not the last; out/model the last. A
    run that ends on an evaluation step reports that evaluation as its final
    one instead of evaluating the same weights again."""
    scripted = iter([50.0, 30.0, 40.0])  # steps 2, 4 and 6 (also the final one)
    dev_sizes = set()

    def validate(model, dev, *args, **kwargs):
        dev_sizes.add(len(dev))
        wer = next(scripted)
        return {"full": wer, "offline": wer, "streaming": wer + 2}

    monkeypatch.setattr(train, "validate", validate)
    dev = ["--dev", str(corpus), "--eval-every", "2"]
    _run(corpus, tmp_path / "run", 6, *dev)
    record = json.loads((tmp_path / "run" / "best" / "dev_wer.json").read_text())
    assert record["step"] == 4 and record["full"] == 30.0
    assert next(scripted, None) is None  # every evaluation was made, none twice
    assert dev_sizes == {len(corpus.read_text().splitlines())}
    # by default on every dev utterance, as recipes.asr.evaluate reads them
    rows = corpus.read_text().splitlines()
    long_dev = corpus.parent / "long_dev.jsonl"  # beside it: same audio paths
    long_dev.write_text("".join(f"{rows[i % len(rows)]}\n" for i in range(450)))
    scripted, dev_sizes = iter([50.0]), set()
    _run(corpus, tmp_path / "long", 1, "--dev", str(long_dev))
    assert dev_sizes == {450}
    # ending between evaluations: steps 2, 4 and the final step 5
    scripted = iter([50.0, 45.0, 20.0])
    _run(corpus, tmp_path / "five", 5, *dev)
    assert next(scripted, None) is None
    record = json.loads((tmp_path / "five" / "best" / "dev_wer.json").read_text())
    assert record["step"] == 5 and record["full"] == 20.0
    _run(corpus, tmp_path / "four", 4)
    best = load_model(tmp_path / "run" / "best").state_dict()
    four = load_model(tmp_path / "four" / "model").state_dict()
    last = load_model(tmp_path / "run" / "model").state_dict()
    for name, value in four.items():
        torch.testing.assert_close(best[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(last[n], v) for n, v in four.items())


def test_init_from_a_sharded_model_folder(corpus, tmp_path) -> None:
    """--init-from reads a model folder whose weights are split into shards;
    at learning rate 0 the run's model is the folder's model."""
    from speech.asr.model import save_model

    _run(corpus, tmp_path / "first", 2)
    start = load_model(tmp_path / "first" / "model")
    sharded = tmp_path / "sharded"
    save_model(start, sharded, max_shard_bytes=20_000)
    assert len(list(sharded.glob("model-*-of-*.pt"))) > 1
    _run(corpus, tmp_path / "second", 1, "--init-from", str(sharded), "--lr", "0")
    finished = load_model(tmp_path / "second" / "model")
    for name, value in start.state_dict().items():
        torch.testing.assert_close(
            finished.state_dict()[name], value, rtol=0, atol=0, msg=name
        )


def test_run_folder_of_other_starting_weights_is_refused(corpus, tmp_path) -> None:
    """A run folder resumes only the run it holds: named with --init-from
    other weights (the next stage of a chain, on a machine that kept the
    last stage's folder), it is refused with one line instead of resumed."""
    from speech.asr.model import save_model

    _run(corpus, tmp_path / "first", 2)
    start = tmp_path / "start"
    save_model(load_model(tmp_path / "first" / "model"), start)
    out = tmp_path / "chained"
    _run(corpus, out, 2, "--init-from", str(start))
    _run(corpus, out, 3, "--init-from", str(start))  # the same start resumes
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 3
    model = load_model(tmp_path / "first" / "model")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    other = tmp_path / "other"
    save_model(model, other)
    with pytest.raises(SystemExit, match="started from other weights than"):
        _run(corpus, out, 4, "--init-from", str(other))
    with pytest.raises(SystemExit, match="resume it with the same --init-from"):
        _run(corpus, out, 4)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 3


def test_profiled_run_reports_operators_and_trains_the_same(
    corpus, tmp_path, caplog, capfd
) -> None:
    """--profile-steps logs the top operators and writes a Chrome trace; the
    profiled run's weights equal those of the same run unprofiled."""
    steps = train.PROFILE_WAIT + train.PROFILE_WARMUP + 2
    _run(corpus, tmp_path / "plain", steps)
    capfd.readouterr()
    with caplog.at_level("INFO", logger="recipes.asr.train"):
        _run(corpus, tmp_path / "profiled", steps, "--profile-steps", "2")
    report = next(r.getMessage() for r in caplog.records if "profile, by" in r.message)
    assert "self_cpu_time_total" in report and "aten::" in report
    assert "Optimizer.step" in report
    trace = json.loads((tmp_path / "profiled" / "profile" / "trace.json").read_text())
    names = [event.get("name", "") for event in trace["traceEvents"]]
    assert any(name.startswith("ProfilerStep") for name in names)
    summary = capfd.readouterr().out
    assert f"step {steps}:" in summary and "waiting for the data loader" in summary
    a = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "profiled" / "checkpoint.pt", weights_only=False)
    for name, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][name], rtol=0, atol=0, msg=name)


def test_read_pcm16_matches_the_float_reader(tmp_path) -> None:
    """The trainer's int16 reader gives what rounding ``read_wav`` gives: as
    stored for 16-bit mono at the rate, converted for everything else."""
    import soundfile

    from recipes.common import read_pcm16, read_wav

    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, size=(8000, 2), dtype=np.int16)
    cases = {
        "mono16k.wav": (pcm[:, 0], 16000, "PCM_16"),
        "stereo16k.wav": (pcm, 16000, "PCM_16"),
        "mono22k.wav": (pcm[:, 0], 22050, "PCM_16"),
        "float16k.wav": (pcm[:, 0] / 40000.0, 16000, "FLOAT"),
    }
    for name, (data, rate, subtype) in cases.items():
        path = str(tmp_path / name)
        soundfile.write(path, data, rate, subtype=subtype)
        got = read_pcm16(path, 16000)
        want = np.clip(np.round(read_wav(path, 16000) * 32768.0), -32768, 32767)
        assert got.dtype == np.int16, name
        np.testing.assert_array_equal(got, want.astype(np.int16), err_msg=name)
    np.testing.assert_array_equal(
        read_pcm16(str(tmp_path / "mono16k.wav"), 16000), pcm[:, 0]
    )
    with pytest.raises(FileNotFoundError):
        read_pcm16(str(tmp_path / "missing.wav"), 16000)


def test_export_checkpoint_writes_the_run_model(corpus, tmp_path) -> None:
    """A stopped run's checkpoint becomes the same model folder the run
    writes at its end."""
    from recipes.asr.export_checkpoint import main as export_checkpoint

    _run(corpus, tmp_path / "run", 3)
    export_checkpoint(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "m")])
    exported = load_model(tmp_path / "m")
    finished = load_model(tmp_path / "run" / "model")
    assert exported.config == finished.config
    for name, value in finished.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], value, msg=name)


def test_joined_utterances(corpus) -> None:
    from recipes.asr.data import JOIN_PAUSE_SECONDS, AsrDataset, BucketBatchSampler
    from recipes.common import read_manifest

    utterances = read_manifest(corpus)
    tokens = [[i + 1] * (i + 2) for i in range(len(utterances))]
    dataset = AsrDataset(utterances, tokens, join_fraction=1.0, join_max_seconds=9)
    base = len(utterances)
    assert dataset.joins and len(dataset) == base + len(dataset.joins)
    assert len(dataset.durations) == len(dataset)
    low, high = JOIN_PAUSE_SECONDS
    for k, (parts, pauses) in enumerate(dataset.joins):
        index = base + k
        samples = dataset.waveform(index)
        assert len(samples) / 16000 == pytest.approx(dataset.durations[index])
        assert dataset.durations[index] <= 9
        assert 2 <= len(parts) <= 3 and len(pauses) == len(parts) - 1
        position = 0
        for n, part in enumerate(parts):
            piece = dataset.waveform(part)
            assert np.array_equal(samples[position : position + len(piece)], piece)
            position += len(piece)
            if n < len(pauses):
                assert low * 16000 <= pauses[n] <= high * 16000
                assert not samples[position : position + pauses[n]].any()
                position += pauses[n]
        _, item_tokens = dataset[(0, index)]
        assert item_tokens.tolist() == [t for p in parts for t in tokens[p]]
    again = AsrDataset(utterances, tokens, join_fraction=1.0, join_max_seconds=9)
    assert again.joins == dataset.joins  # a pure function of the seed
    sampler = BucketBatchSampler(dataset.durations, max_seconds=30)
    seen = {i for batch in sampler.batches(0) for i in batch}
    assert seen == set(range(len(dataset)))
    with pytest.raises(ValueError, match="join fraction"):
        AsrDataset(utterances, tokens, join_fraction=1.5)


def test_evaluate_reports_long_form_against_its_sentences(
    model_dir, speech_file, tmp_path, capsys
) -> None:
    import soundfile as sf

    from recipes.asr import evaluate
    from tests.conftest import TEXTS

    duration = sf.info(speech_file).duration
    row = {"audio": str(speech_file), "duration": duration, "speaker": "flite:slt"}
    short = tmp_path / "test.jsonl"
    short.write_text(json.dumps({**row, "text": " ".join(TEXTS)}) + "\n")
    segments = [{"start": 0.0, "end": duration, "text": " ".join(TEXTS)}]
    long = tmp_path / "longform.jsonl"
    long.write_text(json.dumps({**row, "text": " ".join(TEXTS), "segments": segments}))
    report_file = tmp_path / "report.json"
    argv = ["--model", str(model_dir), "--manifest", str(short)]
    argv += ["--long-form", str(long), "--stream-long-form"]
    evaluate.main([*argv, "--json", str(report_file)])
    report = json.loads(report_file.read_text())
    (long_row,) = report["long_form"]
    assert {"wer", "sentence_wer", "stream_wer", "stream_sentence_wer"} <= set(long_row)
    hypotheses = report["hypotheses"][str(speech_file)]
    assert {"full", "offline", "streaming", "long_form", "long_form_stream"} <= set(
        hypotheses
    )
    # one segment spanning the file: one by one is the file itself
    assert long_row["stream_sentence_wer"] == long_row["stream_wer"]
    capsys.readouterr()
    evaluate.main([*argv, "--compare", str(report_file)])
    assert "5 of 5 transcripts identical" in capsys.readouterr().out
    # --rescore: each utterance streamed live, with and without its second
    # pass; one segment here (the 20 s rule never fires), so the streaming
    # pass's finals are the streaming geometry's text and the rescored ones
    # the offline geometry's, and the long recording likewise
    evaluate.main([*argv, "--rescore", "--json", str(report_file)])
    assert "WER live % | WER rescored %" in capsys.readouterr().out
    report = json.loads(report_file.read_text())
    texts = report["hypotheses"][str(speech_file)]
    assert texts["live"] == texts["streaming"] and texts["live"]
    assert texts["rescored"] == texts["offline"] != texts["live"]
    (long_row,) = report["long_form"]
    assert "stream_first_pass_wer" in long_row  # the same file streamed live
    assert texts["long_form_stream"] == texts["rescored"]
    table = report["table"]["all"]
    assert table["rescored"] == table["offline"] and table["live"] == table["streaming"]


def _torchrun(manifest: Path, out: Path, max_steps: int) -> None:
    """Two CPU processes under torchrun (gloo), as on two GPUs."""
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         "--nproc_per_node", "2", "-m", "recipes.asr.train",
         "--train", str(manifest), "--out", str(out), "--device", "cpu",
         "--vocab-size", "40", "--d-model", "32", "--num-heads", "2",
         "--ffn-dim", "48", "--num-layers", "2", "--total-steps", "8",
         "--max-steps", str(max_steps), "--batch-seconds", "5", "--workers", "1",
         "--save-every", "100", "--warmup", "2", "--deterministic",
         "--join-fraction", "0.5"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_data_parallel_run_resumes_exactly(corpus, tmp_path) -> None:
    """The same script on two processes (DDP over gloo): the ranks stay in
    sync (checked at every checkpoint), a resumed run ends where an
    uninterrupted one does, and rank 0 exports a model that loads."""
    _torchrun(corpus, tmp_path / "straight", 6)
    _torchrun(corpus, tmp_path / "resumed", 3)
    _torchrun(corpus, tmp_path / "resumed", 6)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 6 and len(a["rng"]) == 2
    for name, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][name], rtol=0, atol=0, msg=name)
    model = load_model(tmp_path / "resumed" / "model")
    assert model.config.vocab_size == 40


def _drift_worker(rank: int, address: str, drift: bool, errors) -> None:
    import os

    from recipes.common import Distributed

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=address, WORLD_SIZE="2", RANK=str(rank)
    )
    env = Distributed("cpu")
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3)
    if drift and rank == 1:
        with torch.no_grad():
            module.bias[2] += 1e-6
    try:
        env.check_in_sync(module)
        errors.put((rank, ""))
    except RuntimeError as error:
        errors.put((rank, str(error)))
    finally:
        env.close()


@pytest.mark.parametrize("drift", [False, True])
def test_ranks_out_of_sync_are_caught(drift) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    context = mp.get_context("spawn")
    errors = context.Queue()
    workers = [
        context.Process(target=_drift_worker, args=(r, port, drift, errors))
        for r in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    results = dict(errors.get(timeout=10) for _ in range(2))
    if drift:
        for message in results.values():
            assert message.startswith("ranks [1] hold other parameters than rank 0")
    else:
        assert results == {0: "", 1: ""}


def test_vtlp_range_is_checked(capsys) -> None:
    args = train.parse_args(
        ["--train", "t.jsonl", "--out", "o", "--vtlp-range", "0.8", "1.25"]
    )
    assert args.vtlp_range == (0.8, 1.25)
    with pytest.raises(SystemExit):
        train.parse_args(
            ["--train", "t.jsonl", "--out", "o", "--vtlp-range", "1.2", "0.8"]
        )
    assert (
        "--vtlp-range 1.2 0.8: need 0.5 <= LOW <= HIGH <= 2" in capsys.readouterr().err
    )


def test_eq_strength_and_knots_are_checked(capsys) -> None:
    base = ["--train", "t.jsonl", "--out", "o"]
    args = train.parse_args(base)
    assert (args.eq_db, args.eq_knots) == (8.0, 6)  # the shipped recipe's
    args = train.parse_args([*base, "--eq-db", "12", "--eq-knots", "10"])
    assert (args.eq_db, args.eq_knots) == (12.0, 10)
    for flags, message in [
        (["--eq-db", "-1"], "--eq-db -1: need 0 <= DB <= 24"),
        (["--eq-db", "30"], "--eq-db 30: need 0 <= DB <= 24"),
        (["--eq-knots", "1"], "--eq-knots 1: need 2 <= N <= 32"),
    ]:
        with pytest.raises(SystemExit):
            train.parse_args([*base, *flags])
        assert message in capsys.readouterr().err


def test_revoice_probability_reaches_the_augmentation_and_is_checked(capsys) -> None:
    base = ["--train", "t.jsonl", "--out", "o"]
    assert train.parse_args(base).revoice_prob == 0.0
    assert train.parse_args([*base, "--revoice-prob", "0.3"]).revoice_prob == 0.3
    with pytest.raises(SystemExit):
        train.parse_args([*base, "--revoice-prob", "1.5"])
    assert "--revoice-prob 1.5: need 0 <= P <= 1" in capsys.readouterr().err


def test_fricative_shift_options_reach_the_augmentation_and_are_checked(capsys) -> None:
    base = ["--train", "t.jsonl", "--out", "o"]
    args = train.parse_args(base)
    assert (args.fricative_shift_prob, args.fricative_shift_range) == (0.0, (0.7, 1.25))
    args = train.parse_args(
        [
            *base,
            "--fricative-shift-prob",
            "0.3",
            "--fricative-shift-range",
            "0.6",
            "1.1",
        ]
    )
    assert (args.fricative_shift_prob, args.fricative_shift_range) == (0.3, (0.6, 1.1))
    for flags, message in [
        (["--fricative-shift-prob", "2"], "--fricative-shift-prob 2: need 0 <= P <= 1"),
        (
            ["--fricative-shift-range", "1.2", "0.8"],
            "--fricative-shift-range 1.2 0.8: need 0.5 <= LOW <= HIGH <= 2",
        ),
    ]:
        with pytest.raises(SystemExit):
            train.parse_args([*base, *flags])
        assert message in capsys.readouterr().err


def schedule_end(refit: bool, budget: float = 900.0, n: int = 300) -> float:
    """Run the trainer's schedule fitting against a clock: 14 steps/s until
    step 300, then 9 (stage 24's arms: the first epoch's short utterances,
    then longer ones, evaluations and neighbours); return the learning-rate
    factor of the step at which the time budget runs out."""
    total, step, now, pace_from = 40000, 0, 0.0, 0.0
    while now < budget - 60.0:
        now += 1.0 / (14.0 if step < 300 else 9.0)
        step += 1
        if step == n // 2:
            pace_from = now
        if train.refit_due(step, n) and (refit or step == n):
            rate = (step - n // 2) / (now - pace_from)
            total = train.fitted_total(step, rate, budget - now - 60.0, 40000)
    return train.lr_factor(step, 1000, total)


def test_schedule_follows_the_pace_of_the_run() -> None:
    """Fitted once at step N, a run that slows down afterwards stops with
    its learning rate still high (stage 24's arms: about a quarter of the
    peak); refitted every N steps, it ends its cosine with the budget."""
    assert [s for s in range(1, 1000) if train.refit_due(s, 300)] == [300, 600, 900]
    assert not any(train.refit_due(s, 0) for s in range(1, 1000))
    assert train.fitted_total(300, 10.0, 600.0, 40000) == 6300
    assert train.fitted_total(300, 10.0, 600.0, 5000) == 5000  # --total-steps
    # a resumed run whose stored schedule ends at 6,000 keeps that end
    assert train.fitted_total(5900, 10.0, 600.0, 6000) == 6000
    assert train.fitted_total(300, 10.0, -5.0, 40000) == 301  # budget spent
    assert schedule_end(refit=False) > 0.2
    assert schedule_end(refit=True) < 0.05


def test_resumed_run_stops_at_its_fitted_schedules_end(
    corpus, tmp_path, caplog
) -> None:
    """A run whose schedule was fitted to its time budget ends there; resumed
    after that end (a warm machine that kept the run folder), it trains no
    more steps at the floor rate: it exports the same weights again."""
    out = tmp_path / "fitted"
    # a 1-minute budget less the 60 s kept for the final evaluation: the
    # refit after 2 steps ends the schedule at the next step
    fit = ("--max-minutes", "1", "--fit-schedule", "2")
    _run(corpus, out, 8, *fit)
    first = torch.load(out / "checkpoint.pt", weights_only=False)
    assert first["step"] == first["schedule_total"] == 3
    assert first["schedule_fitted"]
    with caplog.at_level("INFO", logger="recipes.asr.train"):
        _run(corpus, out, 8, *fit)
    again = torch.load(out / "checkpoint.pt", weights_only=False)
    assert again["step"] == 3
    assert "the fitted schedule ended at step 3" in caplog.text
    for name, value in first["model"].items():
        torch.testing.assert_close(value, again["model"][name], rtol=0, atol=0)


def test_learning_rate_defaults_to_a_fine_tune_rate_with_init_from(capsys) -> None:
    """A run from scratch warms up to the from-scratch peak; one that resumes
    a trained model's weights (fresh optimizer) gets the fine-tune rate;
    explicit values win (0 included: weights stay as loaded); a negative
    rate is refused."""
    base = ["--train", "t.jsonl", "--out", "o"]
    scratch = train.parse_args(base)
    assert (scratch.lr, scratch.warmup) == (train.SCRATCH_LR, train.SCRATCH_WARMUP)
    tuned = train.parse_args([*base, "--init-from", "m"])
    assert (tuned.lr, tuned.warmup) == (train.FINETUNE_LR, train.FINETUNE_WARMUP)
    assert tuned.lr < scratch.lr / 10
    chosen = train.parse_args([*base, "--init-from", "m", "--lr", "3e-4"])
    assert (chosen.lr, chosen.warmup) == (3e-4, train.FINETUNE_WARMUP)
    with pytest.raises(SystemExit):
        train.parse_args([*base, "--lr=-1e-4"])
    assert "--lr -0.0001 / --warmup 800: need both >= 0" in capsys.readouterr().err


def test_pack_weights_round_trip(model_dir, tmp_path) -> None:
    """The int8 transport copy unpacks into a model folder that loads, with
    every weight within half a step of its row's scale, vectors and feature
    statistics exact, and the same configuration and tokenizer."""
    from recipes.asr import pack_weights
    from speech.asr.model import load_state

    packed = tmp_path / "carry"
    pack_weights.main(["pack", str(model_dir), str(packed)])
    files = list(packed.glob("model*.pt"))
    parts = [torch.load(f, weights_only=True) for f in files]
    assert any(t.dtype == torch.int8 for part in parts for t in part.values())
    pack_weights.main(["unpack", str(packed), str(tmp_path / "back")])
    original, restored = load_state(model_dir), load_state(tmp_path / "back")
    assert restored.keys() == original.keys()
    for name, value in original.items():
        if value.dim() >= 2 and not name.startswith("feature_"):
            rows = value.reshape(value.shape[0], -1)
            step = rows.abs().amax(1, keepdim=True) / 127
            error = (restored[name].reshape(rows.shape) - rows).abs()
            # half a step of int8 rounding, plus the fp16 of the folder
            assert bool((error <= step / 2 + rows.abs() * 1e-3 + 1e-6).all()), name
        else:
            torch.testing.assert_close(restored[name], value, rtol=1e-3, atol=1e-6)
    model = load_model(tmp_path / "back")
    assert model.config == load_model(model_dir).config
    assert (tmp_path / "back" / "tokenizer.model").read_bytes() == (
        model_dir / "tokenizer.model"
    ).read_bytes()


def test_shipped_model_travels_as_a_transport_copy(tmp_path) -> None:
    """The next training stage starts from the shipped 19.88M-parameter
    model, carried to the GPU machine as an int8 transport copy (README
    "Next"): every file of the copy stays under 16 MB, and it unpacks into a
    model folder ``--init-from`` reads that still recognises a training
    voice."""
    from recipes.asr import pack_weights
    from speech.asr.recognizer import Recognizer
    from speech.asr.torch_backend import TorchBackend

    shipped = Path(__file__).resolve().parents[1] / "speech/models/asr"
    pack_weights.main(["pack", str(shipped), str(tmp_path / "copy")])
    copy = sorted((tmp_path / "copy").iterdir())
    assert sum(f.name.startswith("model-") for f in copy) == 2
    assert all(f.stat().st_size <= 16_000_000 for f in copy)
    pack_weights.main(["unpack", str(tmp_path / "copy"), str(tmp_path / "m")])
    model = load_model(tmp_path / "m")
    assert (model.config.d_model, model.config.num_layers) == (256, 12)
    assert sum(p.numel() for p in model.parameters()) > 19e6
    wav = tmp_path / "slt.wav"
    text = "actions speak louder than words and a stitch in time saves nine"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
    heard = set(Recognizer(TorchBackend(tmp_path / "m")).transcribe(wav).text.split())
    assert {"actions", "speak", "words", "stitch", "time", "saves", "nine"} <= heard


def _script(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``recipes/train_default_models.sh`` as on a GPU machine, with this
    interpreter as ``python`` and the speech engines already installed."""
    import os
    import sys

    root = Path(__file__).resolve().parents[1]
    base = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SKIP_DEVICE_SETUP": "1",
        "WORK": str(work),
        "TRAIN": "asr",
    }
    return subprocess.run(
        ["bash", str(root / "recipes/train_default_models.sh"), *args],
        env={**base, **env},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_device_script_runs_two_asr_arms_on_one_corpus(tmp_path) -> None:
    """Two ASR runs named by ASR_RUN share the corpus the first one built and
    keep their own folders, logs and collected archives; with
    ASR_TUNE_VOICES the corpus gets a tune split, read by a voice in neither
    training nor test, and the runs evaluate on it; an arm pinned to GPUs
    (ASR_GPUS) runs with ASR_THREADS CPU threads; ASR_INIT_PACK starts a run
    from an int8 transport copy; a run name that is not a
    plain word, or is another model's, is refused before anything starts."""
    import os
    import tarfile
    import time

    words = ["red", "green", "blue", "small", "large", "quiet", "early", "late"]
    things = ["house", "river", "garden", "window", "letter", "table", "market"]
    text = tmp_path / "sentences.txt"
    text.write_text(
        "".join(
            f"The {a} {b} stands near the old road today.\n"
            for a in words
            for b in things
        )
    )
    work = tmp_path / "work"
    common = {
        "TEXT_FILE": str(text),
        "ASR_UTTS": "24",
        "ASR_DEV_UTTS": "6",
        "ASR_TEST_UTTS": "6",
        "HELD_OUT_SENTENCES": "6 6",
        "ASR_LONG_FORM": "0",
        "CORPUS_JOBS": "2",
        "ASR_MINUTES": "5",
        "ASR_WORKERS": "0",
        "ASR_BATCH_SECONDS": "12",
        "ASR_TUNE_VOICES": "flite:kal",
    }
    tiny = "--device cpu --vocab-size 40 --num-heads 2 --ffn-dim 48 --num-layers 1 "
    tiny += "--max-steps 2 --dev-utterances 4"
    arms = {"big": "--d-model 48", "small": "--d-model 32"}
    gpus = {"big": {}, "small": {"ASR_GPUS": "0", "ASR_THREADS": "1"}}
    for name, size in arms.items():
        done = _script(
            work,
            "start",
            **common,
            **gpus[name],
            ASR_RUN=name,
            ASR_EXTRA=f"{tiny} {size}",
        )
        assert done.returncode == 0, done.stderr
        assert f"logs in {work}/{{{name},fastpitch,vocoder}}.log" in done.stdout
    corpus_logs = list(work.glob("corpus_*.log"))
    assert [p.name for p in corpus_logs] == ["corpus_asr.log"]
    tune = [json.loads(x) for x in (work / "asr/tune.jsonl").read_text().splitlines()]
    dev = [json.loads(x) for x in (work / "asr/dev.jsonl").read_text().splitlines()]
    assert {r["speaker"] for r in tune} == {"flite:kal"}
    assert sorted(r["text"] for r in tune) == sorted(r["text"] for r in dev)

    deadline = time.monotonic() + 300
    configs = {name: work / f"run_{name}/model/config.json" for name in arms}
    while not all(c.exists() for c in configs.values()):
        assert time.monotonic() < deadline, [
            (work / f"{n}.log").read_text()[-2000:] for n in arms
        ]
        time.sleep(1)
    time.sleep(1)  # the exports end with the tokenizer copy
    widths = {n: json.loads(c.read_text())["d_model"] for n, c in configs.items()}
    assert widths == {"big": 48, "small": 32}
    for name in arms:
        log = (work / f"{name}.log").read_text()
        assert "final step 2 dev WER" in log
        assert f"dev WER on 4 utterances of {work}/asr/tune.jsonl (1 voices)" in log
        assert (work / f"run_{name}/best/dev_wer.json").exists()
        collected = tmp_path / f"out_{name}"
        done = _script(work, "collect", str(collected), ASR_RUN=name)
        assert done.returncode == 0, done.stderr
        with tarfile.open(collected / f"{name}.tar") as tar:
            assert "./config.json" in tar.getnames()
        assert (collected / f"{name}_best.tar").exists()
        assert "final step 2" in (collected / f"{name}.log").read_text()
        # an ASR-only machine: no (empty) TTS logs among the results
        assert not list(collected.glob("fastpitch*")) + list(collected.glob("voc*"))

    # a run from an int8 transport copy (ASR_INIT_PACK): the small arm's model,
    # unpacked into the run's init folder and given as --init-from (without
    # it, these arguments would build the default width, 192)
    from recipes.asr import pack_weights

    log = work / "again.log"

    def start_again_from(model: Path) -> None:
        """ASR_RUN=again from an int8 transport copy of ``model``."""
        packed = tmp_path / f"{model.parent.name}_packed"
        pack_weights.main(["pack", str(model), str(packed)])
        done = _script(
            work,
            "start",
            **common,
            ASR_RUN="again",
            ASR_INIT_PACK=str(packed),
            ASR_EXTRA=tiny,
        )
        assert done.returncode == 0, done.stderr

    def wait_until(ready) -> None:
        deadline = time.monotonic() + 300
        while not ready():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(1)

    start_again_from(work / "run_small/model")
    again = work / "run_again/model/config.json"
    wait_until(again.exists)
    assert json.loads(again.read_text())["d_model"] == 32
    assert (work / "init_again/config.json").exists()
    # the next step of a chain started in the same run folder (other
    # weights in ASR_INIT_PACK): unpacked afresh, and refused by the trainer
    # instead of resuming the run the folder holds
    start_again_from(work / "run_again/model")
    wait_until(lambda: "started from other weights than --init-from" in log.read_text())
    # an arm pinned to its GPUs (ASR_GPUS) gets ASR_THREADS CPU threads
    # (torch takes no more than the machine's cores, so 1 is the one value
    # that shows on any machine)
    assert "CPU threads: 1\n" in (work / "small.log").read_text()
    if (os.cpu_count() or 1) > 1:
        assert "CPU threads: 1\n" not in (work / "big.log").read_text()

    for bad in ["two words", "vocoder"]:  # vocoder: the vocoder run's folder
        refused = _script(work, "start", **common, ASR_RUN=bad)
        assert refused.returncode == 2
        assert f"ASR_RUN={bad}: use letters, digits, _ and - only" in refused.stderr
    assert not (work / "run_vocoder").exists()


@pytest.mark.slow
def test_device_finetune_script_chains_steps(model_dir, tmp_path) -> None:
    """``recipes/asr/device_finetune.sh`` builds a corpus, trains from a
    transport copy and packs the last weights into $OUT; ``fresh`` then
    trains the next step of the chain from those weights on the same
    corpus, in a cleared run folder (the trainer refuses a folder that holds
    another start's run); a missing mode or transport copy is refused with a
    clear error before anything starts."""
    import os
    import sys

    from recipes.asr import pack_weights

    root = Path(__file__).resolve().parents[1]
    text = tmp_path / "sentences.txt"
    text.write_text(
        "".join(
            f"The {a} {b} stands near the old road today.\n"
            for a in ["red", "green", "blue", "small", "large", "quiet"]
            for b in ["house", "river", "garden", "window", "letter", "table"]
        )
    )
    packed = tmp_path / "packed"
    pack_weights.main(["pack", str(model_dir), str(packed)])
    work, out = tmp_path / "work", tmp_path / "out"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SKIP_DEVICE_SETUP": "1",
        "WORK": str(work),
        "OUT": str(out),
        "TEXT_FILE": str(text),
        "EXTRA_TEXT": "",
        "PICO_FRACTION": "0",
        "ASR_UTTS": "24",
        "DEV_UTTS": "6",
        "TEST_UTTS": "6",
        "HELD_OUT_SENTENCES": "6 6",
        "CORPUS_JOBS": "2",
        "TOTAL_MIN": "1",
        "ASR_WORKERS": "0",
        "ASR_BATCH_SECONDS": "12",
        "ASR_WARMUP": "0",
        "ASR_EXTRA": "--device cpu --max-steps 2 --dev-utterances 4",
    }

    def script(*args: str, **more: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(root / "recipes/asr/device_finetune.sh"), *args],
            env={**env, **more},
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
        )

    done = script("start", INIT=str(packed))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "done in" in done.stdout
    assert "final step 2 dev WER" in (out / "asr.log").read_text()
    # the transport copy of a run that started from model_dir's weights
    # (without --init-from the trainer would build its default width)
    step1 = tmp_path / "step1"
    pack_weights.main(["unpack", str(out / "model"), str(step1)])
    assert json.loads((step1 / "config.json").read_text())["d_model"] == 32
    corpus = work / "asr/train.jsonl"
    built = corpus.stat().st_mtime_ns
    assert len(corpus.read_text().splitlines()) == 24

    chained = tmp_path / "chained"
    (out / "model").rename(chained)
    done = script("fresh", INIT=str(chained))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert corpus.stat().st_mtime_ns == built  # the corpus was kept
    log = (out / "asr.log").read_text()
    assert "final step 2 dev WER" in log
    assert "started from other weights" not in log
    assert (out / "model/config.json").exists()

    refused = script()
    assert refused.returncode == 2
    assert "usage:" in refused.stderr
    refused = script("start", INIT=str(tmp_path / "nothing"))
    assert refused.returncode == 2
    assert "holds no packed model" in refused.stderr
    assert corpus.exists()  # refused before clearing anything


def test_average_of_model_folders(model_dir, tmp_path, capsys) -> None:
    """Two models of one lineage average to their (weighted) mean, in a
    folder that loads; a model of another start or shape is refused with a
    one-line error naming it."""
    from recipes.asr import average
    from speech.asr.model import load_state, save_model

    other = load_model(model_dir)
    with torch.no_grad():
        for value in other.parameters():
            value.add_(torch.randn_like(value) * 0.1 + 0.05)
    save_model(other, tmp_path / "other", half=False)
    first, second = load_state(model_dir), load_state(tmp_path / "other")

    average.main(
        [str(model_dir), str(tmp_path / "other"), "--out", str(tmp_path / "m")]
    )
    average.main(
        [str(model_dir), str(tmp_path / "other"), "--weights", "3", "1", "--fp32"]
        + ["--out", str(tmp_path / "w")]
    )
    assert "averaged 2 models (weights 0.75, 0.25)" in capsys.readouterr().out
    mean, weighted = load_state(tmp_path / "m"), load_state(tmp_path / "w")
    name = "ctc.weight"
    assert not torch.equal(first[name], second[name])
    torch.testing.assert_close(
        mean[name], (first[name] + second[name]) / 2, rtol=1e-3, atol=1e-3
    )
    torch.testing.assert_close(
        weighted[name], 0.75 * first[name] + 0.25 * second[name], rtol=1e-6, atol=1e-6
    )
    torch.testing.assert_close(weighted["feature_mean"], first["feature_mean"])
    features = torch.randn(1, 40, load_model(model_dir).config.num_mel_bins)
    assert (
        load_model(tmp_path / "m")(features, torch.tensor([40]), 8, 16, 4)[0]
        .isfinite()
        .all()
    )

    stranger = load_model(model_dir)
    with torch.no_grad():
        stranger.feature_mean.add_(1.0)
    save_model(stranger, tmp_path / "stranger", half=False)
    with pytest.raises(SystemExit):
        average.main(
            [str(model_dir), str(tmp_path / "stranger"), "--out", str(tmp_path / "x")]
        )
    err = capsys.readouterr().err
    assert (
        "stranger: feature_mean differs" in err and "fine-tuned from one start" in err
    )
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        average.main(
            [str(model_dir), str(tmp_path / "other"), "--weights", "1", "--out", "y"]
        )
    assert "--weights: 1 values for 2 models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        average.main([str(model_dir), str(tmp_path), "--out", str(tmp_path / "x")])
    assert "not a model folder (no config.json)" in capsys.readouterr().err


def test_choose_passes_only_a_candidate_better_on_every_set(
    model_dir, speech_file, tmp_path, capsys
) -> None:
    """The untrained fixture model as the baseline: the shipped model reads
    real flite speech far better on both sets and is chosen; the baseline's
    own folder is not better than itself; a folder that is no model is
    reported in one line and the others are still read."""
    import soundfile as sf

    from recipes.asr import choose
    from tests.conftest import TEXTS

    shipped = str(Path(__file__).resolve().parents[1] / "speech/models/asr")
    row = {"audio": str(speech_file), "duration": sf.info(speech_file).duration}
    sets = []
    for name, speaker in [("dev.jsonl", "flite:slt"), ("tune.jsonl", "flite:kal16")]:
        path = tmp_path / name
        path.write_text(
            json.dumps({**row, "speaker": speaker, "text": " ".join(TEXTS)})
        )
        sets.append(str(path))
    missing = str(tmp_path / "nowhere")
    argv = ["--baseline", str(model_dir), "--sets", *sets, "--lm", "none"]
    choose.main([*argv, str(model_dir), missing, shipped])
    out, err = capsys.readouterr()
    rows = {line.split(" | ")[0][2:]: line for line in out.splitlines() if "| " in line}
    assert rows[shipped].endswith("| yes |")
    assert rows[missing].endswith("| - | - | no |")
    assert f"chosen: {shipped}" in out
    assert err.count(f"error: {missing}: not a model folder") == 1
    # the baseline's row, and its folder again as a candidate: not better
    cells = rows[str(model_dir)].split(" | ")[1:3]
    assert all(float(c) > 50 for c in cells)  # an untrained model
    shipped_cells = [float(c) for c in rows[shipped].split(" | ")[1:3]]
    assert all(c < 20 for c in shipped_cells)
    # with the shipped model as the baseline, nothing beats it
    choose.main(
        ["--baseline", shipped, "--sets", *sets, "--lm", "none", str(model_dir)]
    )
    assert "no candidate is better on every set" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        choose.main([*argv, "--beam-size", "1", shipped])
    assert "--beam-size 1: need 2 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        choose.main([shipped, "--baseline", shipped, "--sets", missing])
    assert f"--sets: {missing}: no such file" in capsys.readouterr().err
    # a choice set that reads a test sentence (the test set has it in upper
    # case, read by another voice) is refused before any model is read
    test = tmp_path / "test.jsonl"
    test.write_text(
        json.dumps({**row, "speaker": "flite:rms", "text": " ".join(TEXTS).upper()})
        + "\n"
        + json.dumps({**row, "speaker": "flite:rms", "text": "Another one."})
    )
    with pytest.raises(SystemExit):
        choose.main([*argv, shipped, "--test", str(test)])
    out, err = capsys.readouterr()
    assert f"--sets: {sets[0]} shares 1 of its sentences with the test set" in err
    assert "| baseline |" not in out
    test.write_text(json.dumps({**row, "speaker": "flite:rms", "text": "Other."}))
    choose.main([*argv, "--limit", "1", shipped, "--test", str(test)])
    assert f"chosen: {shipped}" in capsys.readouterr().out
