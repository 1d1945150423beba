"""Time of one ASR training step (forward, CTC loss, backward, gradient
clipping, AdamW) as the trainer runs it, eager or with ``torch.compile``.

    python benchmarks/asr_train_step.py --device cuda --config default --steps 80
    python benchmarks/asr_train_step.py --device cuda --steps 60 --compile

Each step is a new batch of random features whose utterance lengths (1.5 to
12 s) fill ``--batch-seconds``, with the trainer's own draw of chunk size and
contexts (``recipes.asr.train.draw_geometry``), random token targets, and on
a GPU fused AdamW; ``--precision`` as the trainer's switches: ``fp32``,
``tf32`` (its default: TensorFloat-32 matrix products) or ``bf16`` autocast.
Steps are synchronised and timed one by one; the figure is the median of the
second half (the first steps build kernels, and with ``--compile`` the
graphs). Input loading, features and augmentation are
not included: this is the model's step alone.

``--compile`` compiles each Conformer layer (``dynamic=True``) but leaves the
attention eager: compiled, its backward specialises on the longest
utterance and every new batch length recompiles. Inductor's coalescing
analysis is switched off (in torch 2.11 it fails an assertion on these
graphs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import asr_config, machine, markdown_table, synchronize, write_json

from recipes.asr.train import draw_geometry
from speech.asr.model import AsrModel


def compile_layers(model: AsrModel) -> None:
    import torch._dynamo
    import torch._inductor.config as inductor

    from speech.core.attention import RelPositionAttention

    torch._dynamo.config.cache_size_limit = 256
    inductor.triton.coalesce_tiling_analysis = False
    RelPositionAttention.attend = torch.compiler.disable(RelPositionAttention.attend)
    for layer in model.encoder.layers:
        layer.compile(dynamic=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", default="default", help="default, small or large")
    p.add_argument("--batch-seconds", type=float, default=500.0)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="tf32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args()

    device = torch.device(args.device)
    config = asr_config(args.config)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    bf16 = args.precision == "bf16" and device.type == "cuda"
    torch.manual_seed(args.seed)
    model = AsrModel(config).to(device).train()
    if args.compile:
        compile_layers(model)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4, fused=device.type == "cuda")
    rng = np.random.default_rng(args.seed)
    times = []
    for _ in range(args.steps):
        lengths_list: list[int] = []
        while sum(lengths_list) < args.batch_seconds * 100:
            lengths_list.append(int(rng.integers(150, 1200)))  # 10 ms frames
        lengths_list.sort(reverse=True)
        lengths = torch.tensor(lengths_list, device=device)
        features = torch.randn(len(lengths_list), lengths_list[0], 80, device=device)
        longest = (lengths_list[0] - 15) // 8 + 1
        chunk, left, right = draw_geometry(rng, longest, 0.3)
        token_lengths = torch.tensor(
            [max(1, n // 60) for n in lengths_list], device=device
        )
        tokens = torch.randint(
            1, config.vocab_size, (int(token_lengths.sum()),), device=device
        )
        synchronize(args.device)
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            log_probs, out_lengths = model(features, lengths, chunk, left, right)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1).float(),
            tokens,
            out_lengths,
            token_lengths,
            zero_infinity=True,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        synchronize(args.device)
        times.append(time.perf_counter() - start)
    tail = times[len(times) // 2 :]
    step_ms = 1000 * statistics.median(tail)
    row = {
        "config": args.config,
        "parameters (M)": sum(p.numel() for p in model.parameters()) / 1e6,
        "mode": "compile" if args.compile else "eager",
        "precision": args.precision,
        "batch s": args.batch_seconds,
        "steps": args.steps,
        "step ms (median, 2nd half)": step_ms,
        "audio s/s": args.batch_seconds / (step_ms / 1000),
        "first step s": times[0],
    }
    print(markdown_table([row], list(row)))
    write_json(args.json, {"machine": machine(), "rows": [row]})


if __name__ == "__main__":
    main()
