"""bf16 builds through torch.compile: when it switches, what it returns, and its eager fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from simsearch.encode import compiled, packed, torch_encoder
from simsearch.encode.torch_encoder import Encoder

TEXTS = [f"sentence number {i} about {'bread ' * (i % 9)}" for i in range(37)] + [
    "서울 지하철은 편리하다.",
    "a",
    "keep bread fresh " * 40,
]


@pytest.fixture
def two_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_threshold_grows_with_the_threads(monkeypatch) -> None:
    """Compiling costs the same on one thread or two, the saving per text halves: twice the texts."""
    import torch

    monkeypatch.delenv("SIMSEARCH_COMPILE", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compiled.compile_after()
        assert compiled.wanted("bf16", "cpu", one, None) and not compiled.wanted("bf16", "cpu", one - 1, None)
        torch.set_num_threads(2)
        assert compiled.compile_after() == 2 * one == 2 * compiled.COMPILE_AFTER_TEXTS_PER_THREAD
        assert not compiled.wanted("bf16", "cpu", one, None)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("env", "choice", "seen", "expected"),
    [
        (None, None, 0, False),
        (None, None, 2 * compiled.COMPILE_AFTER_TEXTS_PER_THREAD - 1, False),
        (None, None, 2 * compiled.COMPILE_AFTER_TEXTS_PER_THREAD, True),
        ("1", None, 0, True),
        ("on", None, 0, True),
        ("0", None, 10**9, False),
        ("1", False, 10**9, False),  # the encoder's own choice wins over the environment
        ("0", True, 0, True),
    ],
)
def test_when_a_bf16_encoder_compiles(monkeypatch, two_threads, env, choice, seen, expected) -> None:
    if env is None:
        monkeypatch.delenv("SIMSEARCH_COMPILE", raising=False)
    else:
        monkeypatch.setenv("SIMSEARCH_COMPILE", env)
    assert compiled.wanted("bf16", "cpu", seen, choice) is expected
    assert compiled.wanted("fp32", "cpu", seen, choice) is False  # fp32 and int8 run ONNX Runtime
    assert compiled.wanted("int8", "cpu", seen, choice) is False
    assert compiled.wanted("bf16", "cuda", seen, choice) is False


def test_small_calls_and_default_encoders_stay_eager(tiny_bert, monkeypatch) -> None:
    monkeypatch.delenv("SIMSEARCH_COMPILE", raising=False)
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    monkeypatch.setattr(compiled, "COMPILE_AFTER_TEXTS_PER_THREAD", 100)
    encoder = Encoder(str(tiny_bert), precision="bf16", max_length=64)
    encoder.encode(TEXTS[:7])  # a query-sized call: never counts, never compiles
    assert encoder._compiled is None and encoder._large_texts == 0
    encoder.encode(TEXTS)  # 40 texts: counted, still below the (patched) 100
    assert encoder._compiled is None and encoder._large_texts == len(TEXTS)
    forced_off = Encoder(str(tiny_bert), precision="bf16", max_length=64, compile=False)
    for _ in range(3):
        forced_off.encode(TEXTS)
    assert forced_off._compiled is None


def test_compiled_bf16_vectors_match_the_eager_ones(tiny_bert, monkeypatch) -> None:
    """The compiled copy (plain attention, frozen weights) gives the eager bf16 vectors up to
    bf16 rounding, a one-row batch included, and leaves the eager model as it was. (The tiny
    random BERT's bf16 vectors lie up to ~2e-3 from each other, a trained model's ~2e-4: the
    benchmark's cosine column measures the real one.)"""
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    exact = Encoder(str(tiny_bert), max_length=64).encode(TEXTS)
    eager = Encoder(str(tiny_bert), precision="bf16", max_length=64, compile=False)
    fast = Encoder(str(tiny_bert), precision="bf16", max_length=64, compile=True)
    expected, expected_cut = eager.encode_counting(TEXTS, batch_size=4)
    got, cut = fast.encode_counting(TEXTS, batch_size=4)  # 40 rows in 4s: no one-row batch
    assert fast._compiled is not None and fast._compiled.active
    assert cut == expected_cut and got.dtype == np.float32 and got.shape == expected.shape
    assert np.min(np.sum(got * expected, axis=1)) >= 0.995
    # as close to fp32 as eager bf16 is, give or take rounding
    assert np.mean(np.sum(got * exact, axis=1)) >= np.mean(np.sum(expected * exact, axis=1)) - 1e-3
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    odd, _ = fast.encode_counting(TEXTS[:9], batch_size=8)  # 8 rows, then a one-row batch
    assert fast._compiled.active
    assert np.min(np.sum(odd * expected[:9], axis=1)) >= 0.995
    assert fast._loaded.model.config._attn_implementation == "sdpa"  # the twin's "eager" is its own


def test_a_failed_compilation_logs_one_line_and_stays_eager(tiny_bert, monkeypatch, caplog) -> None:
    """No C++ compiler (or an operator inductor cannot take): the first compiled call raises
    inside torch; the encoder says so once and returns the eager vectors."""

    def broken(model):
        def forward(**inputs):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

        return forward

    monkeypatch.setattr(compiled, "compile_model", broken)
    monkeypatch.setattr(torch_encoder, "ONNX_MIN_TEXTS", 8)
    eager = Encoder(str(tiny_bert), precision="bf16", max_length=64, compile=False)
    eager._plain = False  # the model as it was when compiling started: SDPA attention
    fast = Encoder(str(tiny_bert), precision="bf16", max_length=64, compile=True)
    with caplog.at_level(logging.WARNING, logger="simsearch"):
        got = fast.encode(TEXTS)
        fast.encode(TEXTS)
    lines = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert lines == [
        "simsearch: torch.compile unavailable (RuntimeError: InvalidCxxCompiler: No working C++ compiler found); the bf16 encoder stays eager"
    ]
    assert fast._compiled is not None and not fast._compiled.active
    np.testing.assert_allclose(got, eager.encode(TEXTS), atol=1e-6)
    # the calls after it run the eager bf16 path, with its own speed-ups where they match
    assert fast._plain is True and fast._packed is packed.available()


def test_the_compiled_forward_runs_frozen(tiny_bert, monkeypatch) -> None:
    """Inductor reads ``freezing`` when a graph compiles, which is inside a call: the compiled
    forward must run with it set (``torch.compile(options=...)`` did not reach it)."""
    import torch
    from torch._inductor import config as inductor

    seen: list[bool] = []

    def fake_compile(model, **kwargs):
        def forward(**inputs):
            seen.append(bool(inductor.freezing))
            return model(**inputs)

        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    forward = compiled.compile_model(Encoder(str(tiny_bert), max_length=64)._loaded.model)
    before = inductor.freezing
    with torch.inference_mode():
        forward(input_ids=torch.tensor([[101, 7, 102]]), attention_mask=torch.ones(1, 3, dtype=torch.long))
    assert seen == [True] and inductor.freezing == before


def test_the_additive_mask_is_checked_on_the_model(tiny_bert) -> None:
    """A BERT takes the additive 4-D mask as the 0/1 one; a model that ignores its mask (or
    rejects a 4-D one) keeps the 0/1 mask."""
    import torch

    model = Encoder(str(tiny_bert), max_length=64)._loaded.model
    inputs = {
        "input_ids": torch.tensor([[101, 7, 8, 9, 102]]),
        "attention_mask": torch.ones(1, 5, dtype=torch.long),
        "token_type_ids": torch.zeros(1, 5, dtype=torch.long),
    }
    with torch.inference_mode():
        assert compiled.honours_additive_mask(model, inputs)
        mask = compiled.additive_mask(torch.tensor([[1, 1, 0]]), torch.bfloat16)
        assert mask.shape == (1, 1, 1, 3) and mask.dtype == torch.bfloat16
        assert mask[0, 0, 0, 0] == 0 and mask[0, 0, 0, 2] == torch.finfo(torch.bfloat16).min

        class DropsFourD(torch.nn.Module):  # a 4-D mask is ignored: every token attended
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, attention_mask=None, **kw):
                flat = attention_mask is not None and attention_mask.dim() == 2
                return self.inner(attention_mask=attention_mask if flat else None, **kw)

        assert not compiled.honours_additive_mask(DropsFourD(), inputs)

        class FlatOnly(DropsFourD):  # takes only 0/1 masks
            def forward(self, attention_mask=None, **kw):
                if attention_mask is not None and attention_mask.dim() != 2:
                    raise ValueError("2-D masks only")
                return self.inner(attention_mask=attention_mask, **kw)

        assert not compiled.honours_additive_mask(FlatOnly(), inputs)
        one_token = {k: v[:, :1] for k, v in inputs.items()}
        assert not compiled.honours_additive_mask(model, one_token)
