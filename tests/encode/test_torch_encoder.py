"""Encoder, pooling and model resolution, on tiny real models built here and the bundled model."""

from __future__ import annotations

import json
import shutil

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from simsearch.encode.torch_encoder import Encoder
from simsearch.errors import ModelError
from simsearch.encode import models
from simsearch.encode.models import DEFAULT_MODEL, bundled_model_path, resolve_model
from simsearch.encode.pooling import POOLERS, l2_normalize, pool_mean

from tests.conftest import make_tiny_model


class _Out:
    def __init__(self, states: torch.Tensor) -> None:
        self.last_hidden_state = states
        self.pooler_output = states[:, 0] * 2


def test_mean_pooling_ignores_padding() -> None:
    states = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool_mean(_Out(states), mask).tolist() == [[2.0, 2.0]]


def test_cls_and_pooler_strategies() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    mask = torch.ones(1, 2, dtype=torch.long)
    assert POOLERS["cls"](_Out(states), mask).tolist() == [[1.0, 2.0]]
    assert POOLERS["pooler"](_Out(states), mask).tolist() == [[2.0, 4.0]]


def test_l2_normalize_is_epsilon_safe() -> None:
    out = l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert out[0].tolist() == pytest.approx([0.6, 0.8])
    assert out[1].tolist() == [0.0, 0.0]  # no NaN for a zero vector


def test_tiny_bert_encodes_unit_float32_rows(tiny_bert: Path) -> None:
    encoder = Encoder(str(tiny_bert))
    vectors = encoder.encode(["the cat sat on the mat", "서울 지하철은 편리하다", ""])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.pooling == "pooler"  # trained pooler weights, no sentence-transformers config


def test_length_sorted_batches_keep_the_callers_order(tiny_bert: Path) -> None:
    encoder = Encoder(str(tiny_bert), batch_size=2)
    texts = ["the cat", "the cat sat on the mat " * 9, "dog", "bread is fresh and good " * 4]
    together = encoder.encode(texts)
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(together, one_by_one, atol=1e-5)


def test_truncation_at_300_positions_with_korean_vocab(tiny_bert: Path) -> None:
    encoder = Encoder(str(tiny_bert))
    assert encoder.max_length == 300  # kcbert-like: 300 positions
    long_korean = " ".join(["서울 지하철은 편리하다"] * 2500)  # ~5,000 words
    vectors, truncated = encoder.encode_counting([long_korean, "짧은 문장", "the cat"])
    assert truncated == 1
    assert np.isfinite(vectors).all()
    ids, _ = encoder.tokenize([long_korean])
    sep = AutoTokenizer.from_pretrained(str(tiny_bert)).sep_token_id
    assert len(ids[0]) == 300 and ids[0][-1] == sep


def test_max_length_override_is_capped_at_positions(tiny_bert: Path) -> None:
    assert Encoder(str(tiny_bert), max_length=64).max_length == 64
    assert Encoder(str(tiny_bert), max_length=5000).max_length == 300


def test_distilbert_without_token_type_ids(tiny_distilbert: Path) -> None:
    encoder = Encoder(str(tiny_distilbert))
    assert encoder.pooling == "mean"  # no pooler: auto falls back to mean
    vectors, truncated = encoder.encode_counting(["the cat sat " * 400, "dog"])
    assert vectors.shape == (2, 32) and truncated == 1
    with pytest.raises(ModelError, match="no trained pooler"):
        Encoder(str(tiny_distilbert), pooling="pooler")


def test_auto_pooling_follows_sentence_transformers_config(tiny_bert: Path, tmp_path: Path) -> None:
    model = tmp_path / "st-model"
    shutil.copytree(tiny_bert, model)
    (model / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    encoder = Encoder(str(model))
    assert (encoder.pooling, encoder.max_length) == ("cls", 128)
    assert Encoder(str(model), pooling="mean").pooling == "mean"


def test_untrained_pooler_is_not_used_by_auto(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "no-pooler", pooler=False)
    assert Encoder(str(model)).pooling == "mean"


def test_bundled_default_model(bundled_encoder: Encoder) -> None:
    assert bundled_encoder.model_id == DEFAULT_MODEL
    assert (bundled_encoder.pooling, bundled_encoder.max_length, bundled_encoder.dim) == ("mean", 256, 384)
    a, b, c = bundled_encoder.encode(
        [
            "How do I keep bread from going stale?",
            "What is the best way to stop bread going stale?",
            "The stock market fell sharply on Monday.",
        ]
    )
    assert float(a @ b) > 0.8 > float(a @ c) + 0.3


def test_bundled_model_matches_sentence_transformers(bundled_encoder: Encoder) -> None:
    import sentence_transformers as st  # the test extra installs it: this comparison always runs

    texts = ["A man is playing a guitar.", "서울 지하철은 편리하다.", "word " * 600]
    reference = st.SentenceTransformer(str(bundled_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    ours = bundled_encoder.encode(texts)
    assert np.min(np.sum(ours * reference, axis=1)) > 0.99999


def test_resolve_default_and_local_dir(tiny_bert: Path) -> None:
    assert resolve_model(None).path == bundled_model_path()
    assert resolve_model(DEFAULT_MODEL).path == bundled_model_path()
    assert resolve_model(str(tiny_bert)).path == tiny_bert.resolve()


def test_directory_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a model directory"):
        Encoder(str(tmp_path))


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_unreachable_hub_id_fails_fast_with_advice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network() -> bool:
        raise AssertionError("offline: the hub must not be probed")

    monkeypatch.setattr(models, "_hub_reachable", no_network)  # fast = no network wait at all
    with pytest.raises(ModelError) as caught:
        resolve_model("beomi/kcbert-base")
    message = str(caught.value)
    assert "beomi/kcbert-base" in message and "--model" in message


def test_hub_id_resolves_from_the_local_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_bert: Path
) -> None:
    """A hub id that was downloaded before loads offline from the Hugging Face cache layout."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-bert" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_bert, snapshot)
    (cache / "models--acme--tiny-bert" / "refs").mkdir(parents=True)
    (cache / "models--acme--tiny-bert" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    encoder = Encoder("acme/tiny-bert")
    assert encoder.model_id == "acme/tiny-bert"
    assert encoder.encode(["the cat"]).shape == (1, 32)


def test_unknown_pooling() -> None:
    with pytest.raises(ModelError, match="unknown pooling"):
        Encoder(pooling="max")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present here")
def test_cuda_asked_for_without_a_gpu() -> None:
    with pytest.raises(ModelError, match="no CUDA GPU"):
        Encoder(device="cuda")
