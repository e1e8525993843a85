"""The plain attention of eager bf16 builds: its arithmetic, when it is switched on, and when not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simsearch.encode import attention, torch_encoder
from simsearch.encode.torch_encoder import Encoder

TEXTS = [f"sentence number {i} about {'bread ' * (i % 9)}" for i in range(37)] + [
    "서울 지하철은 편리하다.",
    "a",
    "keep bread fresh " * 40,
]


def test_plain_attention_equals_torch_sdpa() -> None:
    """fp32 in, so only the order of roundings differs from torch's own masked attention."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 7, 8) for _ in range(3))
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[1, 4:] = False
    keep[2, 1:] = False
    additive = torch.zeros(3, 1, 1, 7).masked_fill(~keep[:, None, None, :], torch.finfo(torch.float32).min)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
    got, weights = attention.plain_attention(None, q, k, v, additive, scaling=8**-0.5)
    assert weights is None and got.shape == (3, 7, 4, 8)  # (batch, tokens, heads, head dim)
    assert torch.allclose(got.transpose(1, 2), expected, atol=1e-5)
    unmasked, _ = attention.plain_attention(None, q, k, v, None)  # no mask, default 1/sqrt(dim)
    assert torch.allclose(
        unmasked.transpose(1, 2), torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-5
    )


@pytest.fixture
def small_builds(monkeypatch) -> None:
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    monkeypatch.setenv("SIMSEARCH_COMPILE", "0")


def test_large_bf16_calls_switch_a_bert_to_plain_attention(tiny_bert, small_builds) -> None:
    """(The tiny random BERT's bf16 vectors lie up to ~3e-3 from each other, a trained model's
    ~2e-4: the benchmark's cosine column measures the real one.)"""
    exact = Encoder(str(tiny_bert), max_length=64).encode(TEXTS)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference._plain = False  # stays on SDPA
    small = encoder.encode(TEXTS[:5])  # a query-sized call decides nothing
    assert encoder._plain is None and encoder._loaded.model.config._attn_implementation == "sdpa"
    got = encoder.encode(TEXTS)
    assert encoder._plain is True
    assert encoder._loaded.model.config._attn_implementation == attention.NAME
    expected = reference.encode(TEXTS)
    assert reference._loaded.model.config._attn_implementation == "sdpa"
    assert np.min(np.sum(got * expected, axis=1)) >= 0.995  # bf16 rounding apart
    # as close to fp32 as SDPA's bf16 vectors are, give or take rounding
    assert np.mean(np.sum(got * exact, axis=1)) >= np.mean(np.sum(expected * exact, axis=1)) - 1e-3
    assert np.min(np.sum(encoder.encode(TEXTS[:5]) * small, axis=1)) >= 0.995


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_other_precisions_keep_their_attention(tiny_bert, small_builds, monkeypatch, precision) -> None:
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")  # their torch forward, not the exports
    encoder = Encoder(str(tiny_bert), precision=precision, max_length=64)
    encoder.encode(TEXTS)
    assert encoder._plain is None
    assert encoder._loaded.model.config._attn_implementation == "sdpa"


def test_a_model_it_does_not_match_keeps_sdpa(tiny_bert, small_builds, monkeypatch) -> None:
    def wrong(module, query, key, value, attention_mask, **kwargs):
        out, _ = attention.plain_attention(module, query, key, value, attention_mask, **kwargs)
        return out.flip(1), None  # tokens in the wrong order: not the model's attention

    attention.register()
    from transformers import AttentionInterface

    monkeypatch.setitem(AttentionInterface._global_mapping, attention.NAME, wrong)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    reference._plain = False
    got = encoder.encode(TEXTS)
    assert encoder._plain is False
    assert encoder._loaded.model.config._attn_implementation == "sdpa"
    assert np.min(np.sum(got * reference.encode(TEXTS), axis=1)) >= 0.9999


def test_a_model_that_fails_with_it_keeps_sdpa(tiny_bert, small_builds, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("this attention takes other inputs")

    attention.register()
    from transformers import AttentionInterface

    monkeypatch.setitem(AttentionInterface._global_mapping, attention.NAME, broken)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    got = encoder.encode(TEXTS)
    assert encoder._plain is False
    assert encoder._loaded.model.config._attn_implementation == "sdpa"
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
