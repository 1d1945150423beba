"""Writing ONNX files: export a wrapper, add metadata, store weights compactly,
quantise to int8.

Weights. Shipped checkpoints keep their weights in float16; an initializer
whose every value is exactly a float16 number is stored as float16 and cast
back to float32 by a ``Cast`` node, which ONNX Runtime folds when it loads the
graph: compute stays float32 and the numbers are the checkpoint's, bit for
bit, in half the bytes. Other initializers (random test models, the
vocoder's inverse-DFT basis) stay float32.

Size. A graph whose file would exceed ``max_bytes`` keeps its large
initializers in external data shards (``weights-K.bin``, each at most
``max_bytes``) beside it; shards are shared by the graphs of one folder and
identical tensors are stored once. ONNX Runtime finds them by path, so such a
graph must be loaded from its file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "MAX_FILE_BYTES",
    "OPSET",
    "export_module",
    "quantize_int8",
    "set_metadata",
    "store_float16",
    "write_models",
]

logger = logging.getLogger(__name__)

OPSET = 17
MAX_FILE_BYTES = 16 * 2**20
_EXTERNAL_MIN_BYTES = 1024  # smaller initializers stay inside the graph
_FLOAT16_MIN_ELEMENTS = 16  # below this the Cast costs more than it saves


def export_module(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> onnx.ModelProto:
    """Trace ``module`` (in eval mode) with the TorchScript-based exporter.

    ``torch.onnx.export(dynamo=True)`` fails on our attention in torch 2.11
    (its decomposition cannot view the attention output after the head
    transpose) and needs onnxscript, so the TorchScript exporter is used.
    """
    module = module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings
        torch.onnx.export(
            module,
            args,
            buffer,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
        )
    module.eval()  # the exporter restores the mode it found; keep eval
    return onnx.load_from_string(buffer.getvalue())


def set_metadata(model: onnx.ModelProto, metadata: dict[str, object]) -> None:
    """Replace the model's ``metadata_props`` by ``metadata`` (values as
    strings; a runtime reads them with ``session.get_modelmeta()``)."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = str(value)


def store_float16(model: onnx.ModelProto) -> int:
    """Store exactly-float16 float32 initializers as float16 + ``Cast``.

    Returns:
        the number of initializers converted.
    """
    graph = model.graph
    casts = []
    converted = 0
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or tensor.external_data:
            continue
        values = numpy_helper.to_array(tensor)
        if values.size < _FLOAT16_MIN_ELEMENTS:
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values, equal_nan=True):
            continue
        name = tensor.name
        stored = numpy_helper.from_array(half, f"{name}__float16")
        tensor.CopyFrom(stored)
        casts.append(
            helper.make_node(
                "Cast",
                [stored.name],
                [name],
                name=f"{name}__cast",
                to=TensorProto.FLOAT,
            )
        )
        converted += 1
    for node in reversed(casts):  # before every other node: topological order
        graph.node.insert(0, node)
    return converted


def quantize_int8(
    model: onnx.ModelProto, exclude_nodes: Sequence[str] = ()
) -> onnx.ModelProto:
    """Dynamic int8 quantisation of the MatMul/Gemm weights (int8 weights,
    uint8 activations quantised per call); other ops stay float32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.onnx"
        dst = Path(folder) / "out.onnx"
        src.write_bytes(model.SerializeToString())
        disabled, root.disabled = root.disabled, True  # its pre-processing advice
        try:
            quantize_dynamic(
                src,
                dst,
                op_types_to_quantize=["MatMul", "Gemm"],
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=list(exclude_nodes),
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            root.disabled = disabled
        quantized = onnx.load(dst)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    return quantized


def write_models(
    models: dict[str, onnx.ModelProto],
    folder: Path,
    max_bytes: int = MAX_FILE_BYTES,
) -> list[Path]:
    """Save ``{file name: model}`` into ``folder``.

    A model that fits in ``max_bytes`` is written whole; the others get their
    large initializers moved into shared, deduplicated ``weights-K.bin``
    shards of at most ``max_bytes`` each.

    Returns:
        the files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("weights-*.bin"):
        stale.unlink()
    written: list[Path] = []
    shards = _Shards(folder, max_bytes)
    for name, model in models.items():
        path = folder / name
        if model.ByteSize() > max_bytes:
            shards.externalize(model)
            logger.info("%s: weights stored in external shards", name)
        path.write_bytes(model.SerializeToString())
        written.append(path)
    written += shards.close()
    return written


class _Shards:
    """Append-only external data files with content deduplication."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.index = -1
        self.file: io.BufferedWriter | None = None
        self.size = 0
        self.seen: dict[bytes, tuple[str, int, int]] = {}
        self.paths: list[Path] = []

    def _open_next(self) -> None:
        if self.file is not None:
            self.file.close()
        self.index += 1
        path = self.folder / f"weights-{self.index}.bin"
        self.paths.append(path)
        self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.size = 0

    def _store(self, data: bytes) -> tuple[str, int, int]:
        key = hashlib.sha256(data).digest()
        if key in self.seen:
            return self.seen[key]
        if len(data) > self.max_bytes:
            raise ValueError(
                f"one tensor of {len(data)} bytes exceeds the {self.max_bytes}-byte "
                "file limit"
            )
        if self.file is None or self.size + len(data) > self.max_bytes:
            self._open_next()
        assert self.file is not None
        place = (self.paths[-1].name, self.size, len(data))
        self.file.write(data)
        self.size += len(data)
        self.seen[key] = place
        return place

    def externalize(self, model: onnx.ModelProto) -> None:
        for tensor in model.graph.initializer:
            if not tensor.HasField("raw_data"):
                tensor.CopyFrom(
                    numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name)
                )
            if len(tensor.raw_data) < _EXTERNAL_MIN_BYTES:
                continue
            location, offset, length = self._store(tensor.raw_data)
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            del tensor.external_data[:]
            for key, value in (
                ("location", location),
                ("offset", str(offset)),
                ("length", str(length)),
            ):
                entry = tensor.external_data.add()
                entry.key = key
                entry.value = value

    def close(self) -> list[Path]:
        if self.file is not None:
            self.file.close()
            self.file = None
        return list(self.paths)
