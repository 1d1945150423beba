"""``speech export onnx``: write the ONNX graphs of the recognizer and the
synthesizer, check them against PyTorch, optionally quantise them to int8.

Layout of ``--out DIR`` (each folder self-contained, metadata in the graphs):

    DIR/asr/        asr_step.onnx, asr_subsampling.onnx, asr_layer_*.onnx,
                    asr_ctc.onnx
    DIR/tts/        tts_encoder.onnx, tts_decoder_step.onnx,
                    tts_decoder_chunks.onnx, tts_vocoder_step.onnx
    DIR/asr-int8/   the same graphs with int8 MatMul/Gemm weights (--int8)
    DIR/tts-int8/

``load_recognizer(DIR, backend="onnx")`` and ``load_synthesizer(DIR,
backend="onnx")`` take DIR or one of its folders. Graph I/O is documented in
``export.asr_graphs`` and ``export.tts_graphs``.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from export.onnx_files import (
    MAX_FILE_BYTES,
    export_module,
    quantize_int8,
    set_metadata,
    store_float16,
    write_models,
)

__all__ = ["ExportReport", "export_asr", "export_tts", "main"]

logger = logging.getLogger(__name__)


@dataclass
class ExportReport:
    folder: Path
    files: list[Path] = field(default_factory=list)
    parity: dict[str, float] = field(default_factory=dict)
    quantized: bool = False

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    @property
    def largest(self) -> int:
        return max((f.stat().st_size for f in self.files), default=0)


def _export_all(
    graphs: dict[str, dict], metadata: dict[str, dict[str, object]]
) -> dict[str, onnx.ModelProto]:
    models = {}
    for name, spec in graphs.items():
        logger.info("exporting %s", name)
        model = export_module(**spec)
        set_metadata(model, metadata[name])
        models[name] = model
    return models


def _write_variants(
    models: dict[str, onnx.ModelProto],
    folder: Path,
    int8_folder: Path | None,
    max_bytes: int,
    exclude: dict[str, list[str] | None] | None = None,
) -> tuple[list[Path], list[Path]]:
    """Write the fp32 graphs and, with ``int8_folder``, their int8 versions;
    ``exclude`` names the nodes to keep float per graph (``None``: the whole
    graph; a graph missing from a given ``exclude`` is kept float too)."""
    quantized = {}
    if int8_folder is not None:
        for name, model in models.items():
            if exclude and exclude.get(name) is None:  # the whole graph
                quantized[name] = onnx.ModelProto()
                quantized[name].CopyFrom(model)
            else:
                quantized[name] = quantize_int8(model, (exclude or {}).get(name, []))
            store_float16(quantized[name])
    for model in models.values():
        store_float16(model)
    files = write_models(models, folder, max_bytes)
    int8_files = write_models(quantized, int8_folder, max_bytes) if quantized else []
    return files, int8_files


def export_asr(
    model_dir: str | Path | None,
    folder: Path,
    int8_folder: Path | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    check: bool = True,
) -> list[ExportReport]:
    """Export the recognizer in ``model_dir`` (None: the shipped one)."""
    from export.asr_graphs import asr_graphs, asr_metadata
    from speech.asr.model import load_model
    from speech.asr.weights import DEFAULT_MODEL_DIR, weights_digest

    model = load_model(model_dir)
    if model.tokenizer is None:
        raise ValueError(f"{model_dir}: the model has no tokenizer.model")
    base = asr_metadata(model)
    # lets the shipped export tell when the shipped weights have moved on
    base["weights_sha256"] = weights_digest(model_dir or DEFAULT_MODEL_DIR)
    graphs = asr_graphs(model)
    metadata = {}
    for name in graphs:
        role = name.removeprefix("asr_").removesuffix(".onnx")
        metadata[name] = {**base, "graph": role}
    metadata["asr_step.onnx"]["tokenizer"] = base64.b64encode(
        model.tokenizer.to_bytes()
    ).decode("ascii")
    models = _export_all(graphs, metadata)
    files, int8_files = _write_variants(models, folder, int8_folder, max_bytes)
    reports = [ExportReport(folder, files)]
    if int8_folder is not None:
        reports.append(ExportReport(int8_folder, int8_files, quantized=True))
    if check:
        from export.parity import asr_parity

        for report in reports:
            report.parity = asr_parity(model, report.folder)
    return reports


def export_tts(
    voice_dir: str | Path | None,
    folder: Path,
    int8_folder: Path | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    check: bool = True,
) -> list[ExportReport]:
    """Export the voice in ``voice_dir`` (None: the shipped one): FastPitch
    from ``config.json`` + ``fastpitch.pt``, the vocoder from ``vocoder/``."""
    from export.tts_graphs import tts_graphs, tts_metadata, vocoder_metadata
    from speech.tts.fastpitch import load_tts
    from speech.tts.synthesizer import DEFAULT_TTS_DIR, VOCODER_SUBDIR
    from speech.tts.vocoder import load_vocoder

    voice = Path(voice_dir) if voice_dir is not None else DEFAULT_TTS_DIR
    model = load_tts(voice)
    vocoder_dir = voice / VOCODER_SUBDIR
    if not (vocoder_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{vocoder_dir}: no vocoder (the ONNX synthesizer needs one; the "
            "Griffin-Lim fallback exists in the PyTorch back end only)"
        )
    vocoder = load_vocoder(vocoder_dir)
    if vocoder.config.mel != model.config.mel:
        raise ValueError("the vocoder's mel definition differs from the model's")
    graphs = tts_graphs(model, vocoder)
    base = tts_metadata(model)
    metadata = {
        "tts_encoder.onnx": {**base, "graph": "encoder"},
        "tts_decoder_step.onnx": {**base, "graph": "decoder_step"},
        "tts_decoder_chunks.onnx": {**base, "graph": "decoder_chunks"},
        "tts_vocoder_step.onnx": {**vocoder_metadata(vocoder), "graph": "vocoder_step"},
    }
    models = _export_all(graphs, metadata)
    # The text encoder stays float (int8 there changes durations, i.e.
    # timing, for little speed: it runs once per sentence and is mostly
    # convolutions); so does the vocoder's inverse DFT (audible in int8).
    exclude: dict[str, list[str] | None] = {
        "tts_encoder.onnx": None,
        "tts_decoder_step.onnx": [],
        "tts_decoder_chunks.onnx": [],
        "tts_vocoder_step.onnx": [
            node.name
            for node in models["tts_vocoder_step.onnx"].graph.node
            if node.op_type == "MatMul" and any("basis" in name for name in node.input)
        ],
    }
    files, int8_files = _write_variants(models, folder, int8_folder, max_bytes, exclude)
    reports = [ExportReport(folder, files)]
    if int8_folder is not None:
        reports.append(ExportReport(int8_folder, int8_files, quantized=True))
    if check:
        from export.parity import tts_parity

        for report in reports:
            report.parity = tts_parity(model, vocoder, report.folder)
    return reports


def _format(report: ExportReport) -> str:
    lines = [
        f"{report.folder}: {len(report.files)} files, "
        f"{report.size / 2**20:.1f} MiB (largest {report.largest / 2**20:.1f} MiB)"
    ]
    for name, value in report.parity.items():
        lines.append(f"  parity {name}: {value:.2e}")
    return "\n".join(lines)


def _parity_failures(report: ExportReport) -> list[str]:
    from export.parity import TOLERANCE

    if report.quantized:
        return []
    return [
        f"{report.folder}: {name} differs by {value:.2e}"
        for name, value in report.parity.items()
        if value > (0 if name.endswith("mismatches") else TOLERANCE)
    ]


def copy_lm(model_dir: str | Path | None, out: Path) -> Path | None:
    """The model folder's word LM (``lm.arpa.gz``), copied beside the export's
    ``asr/`` and ``asr-int8/`` folders, where ``load_recognizer`` looks for it."""
    from speech.asr.model import DEFAULT_MODEL_DIR
    from speech.asr.recognizer import LM_FILE

    source = Path(model_dir or DEFAULT_MODEL_DIR) / LM_FILE
    if not source.is_file():
        return None
    target = out / LM_FILE
    tmp = target.with_name(f".{LM_FILE}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def main(args: argparse.Namespace) -> int:
    """CLI entry (``speech export onnx``); returns the exit status."""
    out = Path(args.out)
    reports: list[ExportReport] = []
    try:
        if not args.skip_asr:
            reports += export_asr(
                args.model, out / "asr", out / "asr-int8" if args.int8 else None
            )
            copy_lm(args.model, out)
        if not args.skip_tts:
            reports += export_tts(
                args.tts_model, out / "tts", out / "tts-int8" if args.int8 else None
            )
    except (FileNotFoundError, ValueError) as error:
        print(f"speech export onnx: {error}", file=sys.stderr)
        return 2
    failures = []
    for report in reports:
        print(_format(report))
        failures += _parity_failures(report)
    for failure in failures:
        print(f"speech export onnx: parity check failed: {failure}", file=sys.stderr)
    return 1 if failures else 0
