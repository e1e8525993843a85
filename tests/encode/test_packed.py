"""Prepacked bf16 Linear layers of eager bf16 builds: same numbers, when they are used, when not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simsearch.encode import packed, torch_encoder
from simsearch.encode.compiled import compile_model
from simsearch.encode.torch_encoder import Encoder

TEXTS = [f"sentence number {i} about {'bread ' * (i % 9)}" for i in range(37)] + [
    "서울 지하철은 편리하다.",
    "a",
    "keep bread fresh " * 40,
]

pytestmark = pytest.mark.skipif(not packed.available(), reason="this torch has no oneDNN linear operators")


@pytest.fixture
def small_builds(monkeypatch) -> None:
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    monkeypatch.setenv("SIMSEARCH_COMPILE", "0")


def _linears(model) -> tuple[int, int]:
    """(ordinary Linear layers, packed layers) directly in ``model``'s module tree."""
    cls = packed.packed_linear_class()
    children = [c for m in model.modules() if not isinstance(m, cls) for c in m.children()]
    return (
        sum(type(c) is torch.nn.Linear for c in children),
        sum(isinstance(c, cls) for c in children),
    )


@pytest.mark.parametrize("rows", [1, 3, 40, 700])
def test_a_packed_layer_gives_the_linear_layers_numbers(rows) -> None:
    """Any batch height, a bias or none, 2-D or 3-D input, fp32 input cast as autocast would."""
    generator = torch.Generator().manual_seed(rows)
    for bias in (True, False):
        linear = torch.nn.Linear(48, 80, bias=bias).to(torch.bfloat16)
        layer = packed.packed_linear_class()(linear)
        x = torch.randn(rows, 5, 48, generator=generator)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            expected, got = linear(x), layer(x)
        assert got.dtype == torch.bfloat16 and got.shape == (rows, 5, 80)
        torch.testing.assert_close(got, expected, atol=1e-2, rtol=1e-2)
        assert layer.weight is linear.weight and layer.out_features == 80


def test_large_bf16_calls_pack_a_berts_linear_layers(tiny_bert, small_builds) -> None:
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference._packed = False  # keeps its Linear layers
    encoder._plain = reference._plain = False  # SDPA throughout: only the layers differ
    total = _linears(encoder._loaded.model)[0]
    assert total >= 12  # 2 layers x 6, the pooler
    small = encoder.encode(TEXTS[:5])  # a query-sized call decides nothing
    assert encoder._packed is None and _linears(encoder._loaded.model) == (total, 0)
    got = encoder.encode(TEXTS)
    assert encoder._packed is True and _linears(encoder._loaded.model) == (0, total)
    expected = reference.encode(TEXTS)
    assert _linears(reference._loaded.model) == (total, 0)
    assert np.min(np.sum(got * expected, axis=1)) >= 0.99999  # the same products
    assert np.min(np.sum(encoder.encode(TEXTS[:5]) * small, axis=1)) >= 0.99999  # small calls too


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_other_precisions_keep_their_layers(tiny_bert, small_builds, monkeypatch, precision) -> None:
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")  # their torch forward, not the exports
    encoder = Encoder(str(tiny_bert), precision=precision, max_length=64)
    before = _linears(encoder._loaded.model)
    encoder.encode(TEXTS)
    assert encoder._packed is None and _linears(encoder._loaded.model) == before


def test_layers_that_change_the_states_are_put_back(tiny_bert, small_builds, monkeypatch) -> None:
    cls = packed.packed_linear_class()
    right = cls.forward
    monkeypatch.setattr(cls, "forward", lambda self, x: right(self, x) * 1.5)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    total = _linears(encoder._loaded.model)[0]
    reference = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference._packed = False
    got = encoder.encode(TEXTS)
    assert encoder._packed is False and _linears(encoder._loaded.model) == (total, 0)
    assert np.min(np.sum(got * reference.encode(TEXTS), axis=1)) >= 0.99999


def test_layers_that_fail_are_put_back(tiny_bert, small_builds, monkeypatch) -> None:
    def broken(self, x):
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(packed.packed_linear_class(), "forward", broken)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    total = _linears(encoder._loaded.model)[0]
    got = encoder.encode(TEXTS)
    assert encoder._packed is False and _linears(encoder._loaded.model) == (total, 0)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)


def test_without_onednn_nothing_is_swapped(tiny_bert, small_builds, monkeypatch) -> None:
    monkeypatch.setattr(packed, "available", lambda: False)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    total = _linears(encoder._loaded.model)[0]
    encoder.encode(TEXTS)
    assert encoder._packed is False and _linears(encoder._loaded.model) == (total, 0)


def test_the_compiled_twin_gets_ordinary_layers(tiny_bert, small_builds) -> None:
    """Inductor prepacks nn.Linear weights itself, fused with bias and the rest: the copy it
    compiles has the original layers, and the eager model keeps its packed ones."""
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    encoder.encode(TEXTS)
    model = encoder._loaded.model
    total = _linears(model)[1]
    twin = packed.plain_copy(model)
    assert _linears(twin) == (total, 0) and _linears(model) == (0, total)
    assert (
        twin.encoder.layer[0].attention.self.query.weight
        is not model.encoder.layer[0].attention.self.query.weight
    )
    compile_model(model)  # compiles lazily: only the copy is made here
    assert _linears(model) == (0, total)


def test_a_build_that_compiles_after_packing_keeps_its_vectors(tiny_bert, monkeypatch) -> None:
    """The auto threshold: eager (packed) first, compiled from the copy with ordinary layers
    after; the compiled vectors are the eager ones up to bf16 rounding."""
    from simsearch.encode import compiled

    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    monkeypatch.delenv("SIMSEARCH_COMPILE", raising=False)
    monkeypatch.setattr(compiled, "compile_after", lambda: len(TEXTS) + 1)  # from the second call
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    eager = encoder.encode(TEXTS)
    assert encoder._packed is True and encoder._compiled is None
    fast = encoder.encode(TEXTS)
    assert encoder._compiled is not None and encoder._compiled.active
    assert np.min(np.sum(fast * eager, axis=1)) >= 0.995  # bf16 rounding apart (a random model)
    assert _linears(encoder._loaded.model)[1] > 0  # small calls keep the packed layers
