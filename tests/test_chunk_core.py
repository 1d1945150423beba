"""The chunk-attention core and the ChunkFormer encoder against a naive dense
reference, and the three ways of running the encoder against each other."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speech.asr.config import AsrConfig, ChunkGeometry
from speech.asr.encoder import ConformerLayer, stack_states, unstack_states
from speech.asr.longform import EncoderPipeline
from speech.asr.model import AsrModel
from speech.core import (
    build_chunk_layout,
    chunk_attention_mask,
    padding_mask,
    relative_position_table,
    take_rows,
)

TINY = AsrConfig(
    d_model=32,
    num_heads=4,
    ffn_dim=48,
    num_layers=3,
    conv_kernel=5,
    subsampling_channels=8,
    vocab_size=13,
    dropout=0.0,
)


def test_chunk_attention_mask_worked_example() -> None:
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(chunk_attention_mask(7, 2, 2, 1), expected)
    assert chunk_attention_mask(4, 4, 0, 0).all()


def test_padding_mask() -> None:
    assert padding_mask(torch.tensor([1, 3])).tolist() == [
        [True, False, False],
        [True, True, True],
    ]


def test_layout_windows_match_dense_mask() -> None:
    num_frames, size, left, right = 11, 3, 4, 2
    layout = build_chunk_layout(
        torch.tensor([num_frames]),
        torch.tensor([num_frames]),
        torch.tensor([0]),
        size,
        left,
        right,
        conv_context=2,
        key_cache_rows=0,
        conv_cache_rows=0,
    )
    dense = chunk_attention_mask(num_frames, size, left, right)
    for n in range(layout.key_index.shape[0]):
        keys = set(layout.key_index[n][layout.key_valid[n]].tolist())
        for q in layout.query_index[n][layout.query_valid[n]].tolist():
            assert keys == set(torch.nonzero(dense[q]).flatten().tolist())


def _dense_layer(
    layer: ConformerLayer, x: torch.Tensor, size: int, left: int, right: int
) -> torch.Tensor:
    """One layer on one utterance, written as plainly as possible: dense
    masked scores with explicit relative distances, frame-by-frame conv."""
    frames, dim = x.shape
    att = layer.attention
    heads, head_dim = att.num_heads, att.head_dim
    x = x + 0.5 * layer.ffn_in(x)
    h = layer.attention_norm(x)
    k, v = att.project_keys_values(h)
    q = att.project_queries(h)
    q = q.view(frames, heads, head_dim).transpose(0, 1)  # (H, T, E)
    k = k.view(frames, heads, head_dim).transpose(0, 1)
    v = v.view(frames, heads, head_dim).transpose(0, 1)
    distance = torch.arange(frames)[:, None] - torch.arange(frames)[None, :]
    inv_freq = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    angles = distance[..., None].float() * inv_freq
    table = torch.stack([angles.sin(), angles.cos()], -1).flatten(2)  # (T, T, D)
    p = att.position(table).view(frames, frames, heads, head_dim).permute(2, 0, 1, 3)
    content = torch.einsum("hte,hse->hts", q + att.pos_bias_u[:, None], k)
    position = torch.einsum("hte,htse->hts", q + att.pos_bias_v[:, None], p)
    scores = (content + position) / math.sqrt(head_dim)
    mask = chunk_attention_mask(frames, size, left, right)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    attended = (weights @ v).transpose(0, 1).reshape(frames, dim)
    y = x + att.out(attended)
    gate = layer.convolution.gate(y)  # (T, D)
    context = layer.convolution.context
    mixed_in = torch.zeros(frames, 2 * context + 1, dim)
    for t in range(frames):
        chunk_end = min((t // size + 1) * size, frames)
        for j, s in enumerate(range(t - context, t + context + 1)):
            if 0 <= s < chunk_end:
                mixed_in[t, j] = gate[s]
    conv = layer.convolution
    z = (mixed_in * conv.depthwise.weight[:, 0, :].T[None]).sum(1) + conv.depthwise.bias
    z = conv.pointwise_out(torch.nn.functional.silu(conv.depthwise_norm(z)))
    y = y + z
    y = y + 0.5 * layer.ffn_out(y)
    return layer.final_norm(y)


@settings(max_examples=12, deadline=None)
@given(
    frames=st.integers(1, 23),
    size=st.integers(1, 6),
    left=st.integers(0, 9),
    right=st.integers(0, 7),
    seed=st.integers(0, 1000),
)
def test_masked_batch_layer_equals_dense_reference(
    frames, size, left, right, seed
) -> None:
    torch.manual_seed(seed)
    layer = ConformerLayer(16, 2, 24, 5, 0.0).eval()
    other = torch.randn(5, 16)
    x = torch.randn(frames, 16)
    lengths = torch.tensor([5, frames])
    layout = build_chunk_layout(
        lengths,
        lengths,
        torch.zeros(2, dtype=torch.long),
        size,
        left,
        right,
        conv_context=2,
        key_cache_rows=0,
        conv_cache_rows=0,
    )
    positions = relative_position_table(size, left, right, 16)
    with torch.no_grad():
        out = layer(torch.cat([other, x]), layout, positions)[0]
        reference = _dense_layer(layer, x, size, left, right)
    torch.testing.assert_close(out[5:], reference, atol=2e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_model() -> AsrModel:
    torch.manual_seed(0)
    model = AsrModel(TINY).eval()
    with torch.no_grad():
        model.feature_mean.normal_()
        model.feature_istd.uniform_(0.5, 1.5)
    return model


@settings(max_examples=10, deadline=None)
@given(
    lengths=st.lists(st.integers(10, 300), min_size=1, max_size=4),
    size=st.integers(1, 8),
    left=st.integers(0, 12),
    right=st.integers(0, 8),
)
def test_masked_batching_equals_one_by_one(
    tiny_model, lengths, size, left, right
) -> None:
    features = torch.randn(len(lengths), max(lengths), 80)
    lens = torch.tensor(lengths)
    with torch.no_grad():
        batch, out_lens = tiny_model(features, lens, size, left, right)
        for b, n in enumerate(lengths):
            alone, alone_len = tiny_model(
                features[b : b + 1, :n], lens[b : b + 1], size, left, right
            )
            assert alone_len[0] == out_lens[b]
            torch.testing.assert_close(
                alone[0], batch[b, : out_lens[b]], atol=1e-5, rtol=1e-5
            )


def _stream(
    model: AsrModel, features: torch.Tensor, size: int, left: int
) -> torch.Tensor:
    window = 8 * size + 7
    total = int((features.shape[0] - 15) // 8 + 1)
    state = model.init_state(1, left)
    outputs = []
    for start in range(0, total, size):
        piece = features[start * 8 : start * 8 + window]
        piece = torch.cat([piece, piece.new_zeros(window - piece.shape[0], 80)])
        valid = min(size, total - start)
        log_probs, state = model.forward_chunk(
            piece[None], state, torch.tensor([valid])
        )
        outputs.append(log_probs[0, :valid])
    assert int(state.processed) == total
    return torch.cat(outputs)


@settings(max_examples=10, deadline=None)
@given(frames=st.integers(15, 260), size=st.integers(1, 8), left=st.integers(0, 12))
def test_streaming_equals_masked_batch(tiny_model, frames, size, left) -> None:
    features = torch.randn(frames, 80)
    with torch.no_grad():
        offline, _ = tiny_model(features[None], torch.tensor([frames]), size, left, 0)
        streamed = _stream(tiny_model, features, size, left)
    torch.testing.assert_close(streamed, offline[0], atol=1e-5, rtol=1e-5)


def test_streaming_states_stack_and_unstack(tiny_model) -> None:
    left, window = 8, 39
    a, b = torch.randn(2, 3 * 32 + 7, 80)
    state = stack_states(
        [tiny_model.init_state(1, left), tiny_model.init_state(1, left)]
    )
    single = [tiny_model.init_state(1, left), tiny_model.init_state(1, left)]
    with torch.no_grad():
        for step in range(3):
            chunk = torch.stack([a, b])[:, step * 32 : step * 32 + window]
            batched, state = tiny_model.forward_chunk(chunk, state)
            for i in range(2):
                alone, single[i] = tiny_model.forward_chunk(chunk[i : i + 1], single[i])
                torch.testing.assert_close(alone[0], batched[i], atol=1e-5, rtol=1e-5)
    for i, part in enumerate(unstack_states(state)):
        torch.testing.assert_close(part.keys, single[i].keys, atol=1e-5, rtol=1e-5)
    assert state.keys.shape == (TINY.num_layers, 2, left, TINY.d_model)


@settings(max_examples=8, deadline=None)
@given(
    frames=st.integers(15, 500),
    size=st.integers(1, 8),
    left=st.integers(0, 12),
    right=st.integers(0, 10),
    seed=st.integers(0, 99),
)
def test_pipeline_equals_masked_batch(
    tiny_model, frames, size, left, right, seed
) -> None:
    rng = random.Random(seed)
    features = torch.randn(frames, 80)
    with torch.no_grad():
        offline, _ = tiny_model(
            features[None], torch.tensor([frames]), size, left, right
        )
    pipe = EncoderPipeline(
        tiny_model, ChunkGeometry(size, left, right), max_subsampling_frames=5
    )
    outputs, pos = [], 0
    while pos < frames:
        step = rng.randint(1, 90)
        outputs.append(pipe.push(features[pos : pos + step]))
        pos += step
    outputs.append(pipe.flush())
    torch.testing.assert_close(torch.cat(outputs), offline[0], atol=1e-5, rtol=1e-5)


def test_pipeline_memory_is_bounded_and_layouts_are_reused(tiny_model) -> None:
    pipe = EncoderPipeline(tiny_model, ChunkGeometry(4, 8, 4))
    built = []
    build = pipe._build_layout
    pipe._build_layout = lambda *args: built.append(args) or build(*args)
    for _ in range(30):
        pipe.push(torch.randn(800, 80))
        assert all(p.shape[0] <= 100 + 4 + 4 for p in pipe.pending)
        assert pipe.features.shape[0] < 15
    assert pipe.frames_out > 2500
    # 30 equal blocks x 2 layers: a handful of distinct layouts, each built once
    assert len(built) == len(set(built)) <= 6


def test_forward_list_equals_padded_forward(tiny_model) -> None:
    lengths = [40, 233, 15, 14, 101]
    features = [torch.randn(n, 80) for n in lengths]
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    with torch.no_grad():
        listed = tiny_model.forward_list(features, 4, 8, 2, max_subsampling_frames=3)
        batch, out_lengths = tiny_model(padded, torch.tensor(lengths), 4, 8, 2)
    assert [t.shape[0] for t in listed] == out_lengths.tolist() == [4, 28, 1, 0, 11]
    for b, log_probs in enumerate(listed):
        torch.testing.assert_close(
            log_probs, batch[b, : out_lengths[b]], atol=1e-5, rtol=1e-5
        )


def test_core_docstring_examples() -> None:
    import doctest

    import speech.core.attention
    import speech.core.layout
    import speech.core.masks

    for module in (speech.core.masks, speech.core.layout, speech.core.attention):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_subsampling_shape_buckets_leave_the_output_unchanged(tiny_model) -> None:
    subsampling = tiny_model.encoder.subsampling
    with torch.no_grad():
        for frames in (15, 100, 8 * 70 + 7, 8 * 129 + 9):
            features = torch.randn(2, frames, 80)
            plain = subsampling(features, bucket=1)
            bucketed = subsampling(features, bucket=64)
            assert bucketed.shape == plain.shape
            assert plain.shape[1] == (frames - 15) // 8 + 1
            torch.testing.assert_close(bucketed, plain, atol=1e-5, rtol=1e-5)


def test_take_rows_matches_indexing_in_values_and_gradients() -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 5, requires_grad=True)
    index = torch.tensor([[0, 3, 3, 6], [2, 2, 2, 1]])  # repeated rows
    weights = torch.randn(2, 4, 5)
    expected = x[index]
    (expected * weights).sum().backward()
    plain_grad, x.grad = x.grad.clone(), None
    picked = take_rows(x, index)
    assert picked.shape == (2, 4, 5)
    assert torch.equal(picked, expected)
    (picked * weights).sum().backward()
    # repeated rows accumulate their gradients as advanced indexing does
    assert torch.allclose(x.grad, plain_grad, atol=1e-6)
    assert torch.equal(take_rows(x, torch.tensor([4])), x[[4]])
    assert take_rows(x, torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3, 5)


def test_layer_without_caches_gives_the_same_output() -> None:
    torch.manual_seed(0)
    layer = ConformerLayer(16, 2, 32, 5, 0.0).eval()
    lengths = torch.tensor([9, 4])
    layout = build_chunk_layout(lengths, lengths, torch.zeros(2, dtype=torch.long),
                                3, 2, 1, 2, 0, 0)  # fmt: skip
    positions = relative_position_table(3, 2, 1, 16)
    x = torch.randn(13, 16)
    full = layer(x, layout, positions)
    bare = layer(x, layout, positions, caches=False)
    assert torch.equal(full[0], bare[0])
    assert bare[1:] == (None, None, None) and full[1] is not None
