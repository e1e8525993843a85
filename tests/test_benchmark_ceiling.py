"""The encoder benchmark's arithmetic: GEMM FLOPs per sentence and the share-of-peak guard."""

from __future__ import annotations

import pytest

from benchmarks.ceiling import Shapes, check_share, gflop_per_sentence, padded_gflop_per_sentence

MINILM = Shapes(layers=6, hidden=384, intermediate=1536)


def test_flops_follow_the_layer_shapes():
    # 6 layers x (2 * 10 tokens * (4*384^2 + 2*384*1536) + 4 * 10^2 * 384)
    assert MINILM.flops(10) == 6 * (20 * (4 * 384**2 + 2 * 384 * 1536) + 400 * 384)
    # all-MiniLM-L6-v2 at the corpus' mean length: about half a GFLOP a sentence (issue 26)
    assert 0.47 < gflop_per_sentence(MINILM, [22, 23]) < 0.50


def test_padding_costs_what_the_batches_waste():
    same = [20] * 8
    assert padded_gflop_per_sentence(MINILM, same, 4) == pytest.approx(gflop_per_sentence(MINILM, same))
    mixed = [40, 10, 10, 10]
    assert padded_gflop_per_sentence(MINILM, mixed, 8) == pytest.approx(MINILM.flops(40) / 1e9)
    assert padded_gflop_per_sentence(MINILM, mixed, 1) == pytest.approx(gflop_per_sentence(MINILM, mixed))


def test_a_share_above_the_peak_is_an_error():
    check_share("fine", 0.99)
    with pytest.raises(RuntimeError, match="no encoder can reach"):
        check_share("impossible", 1.07)


def test_the_onednn_bf16_peak_kernel_computes_the_product():
    """The bf16 peak counts oneDNN's prepacked inner product: it must multiply what mm does."""
    torch = pytest.importorskip("torch")
    from benchmarks.ceiling import _onednn_bf16

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(64, 64, generator=generator).bfloat16() for _ in range(2))
    kernels = _onednn_bf16(a, b)
    if not kernels:
        pytest.skip("this torch has no oneDNN linear operators")
    (kernel,) = kernels.values()
    got = kernel()
    assert isinstance(got, torch.Tensor)
    torch.testing.assert_close(got.float(), torch.mm(a, b).float(), atol=0.1, rtol=0.02)
