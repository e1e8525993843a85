"""Encoder precisions: fp32 equals sentence-transformers; bf16 and int8 stay close; the index keeps it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from simsearch import Index, ModelError
from simsearch.cli.main import main
from simsearch.encode.torch_encoder import Encoder
from simsearch.encode.precision import _has_vnni

SENTENCES = [
    "How do I keep bread from going stale?",
    "The cat sat on the mat.",
    "Vitamin D supplements and bone density in older adults.",
    "서울 지하철은 편리하다.",
    "a",
    "An unusually long sentence " + "with many repeated words " * 20,
]


def test_fp32_matches_sentence_transformers(bundled_encoder):
    import sentence_transformers  # the test extra installs it: this comparison always runs

    reference = sentence_transformers.SentenceTransformer(str(bundled_encoder.model_path), device="cpu")
    expected = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    got = bundled_encoder.encode(SENTENCES)
    assert bundled_encoder.precision == "fp32"
    assert np.min(np.sum(got * expected, axis=1)) >= 0.99999


# int8 with 8-bit activations (VNNI CPUs) stays within cosine 0.95; torch's 7-bit default within 0.85.
@pytest.mark.parametrize("precision, floor", [("bf16", 0.999), ("int8", 0.95 if _has_vnni() else 0.85)])
def test_fast_precisions_stay_close_to_fp32(bundled_encoder, precision, floor):
    fast = Encoder(precision=precision)
    got = fast.encode(SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), bundled_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(got * bundled_encoder.encode(SENTENCES), axis=1)
    assert cosine.min() >= floor
    # Ranking survives: each sentence is still nearest to its own fp32 vector.
    nearest = np.argmax(got @ bundled_encoder.encode(SENTENCES).T, axis=1)
    assert list(nearest) == list(range(len(SENTENCES)))


def test_unknown_precision_is_refused(tiny_bert):
    with pytest.raises(ModelError, match="unknown precision 'fp8'"):
        Encoder(str(tiny_bert), precision="fp8")


def test_tiny_model_every_precision(tiny_bert):
    vectors = {
        p: Encoder(str(tiny_bert), precision=p).encode(SENTENCES[:4]) for p in ("fp32", "bf16", "int8")
    }
    for precision in ("bf16", "int8"):
        assert np.sum(vectors[precision] * vectors["fp32"], axis=1).min() > 0.9


def test_index_records_precision_and_queries_use_it(tiny_bert, index_dir):
    encoder = Encoder(str(tiny_bert), precision="int8")
    Index.build(SENTENCES[:4], "p8", encoder, index_dir=index_dir)
    index = Index.open("p8", index_dir=index_dir)
    assert index.manifest["precision"] == "int8"
    assert index.encoder.precision == "int8"
    assert index.search("The cat sat on the mat.", k=1)[0].text == "The cat sat on the mat."
    with pytest.raises(ModelError, match="precision 'int8'"):
        Index.open("p8", index_dir=index_dir, encoder=Encoder(str(tiny_bert)))


def test_cli_build_precision(tiny_bert, index_dir, tmp_path):
    source = tmp_path / "docs.txt"
    source.write_text("\n".join(SENTENCES[:4]) + "\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(
        main, ["build", str(source), "--name", "b", "--model", str(tiny_bert), "--precision", "bf16"]
    )
    assert result.exit_code == 0, result.output
    info = runner.invoke(main, ["info", "b", "--json"])
    assert json.loads(info.output)["precision"] == "bf16"
    query = runner.invoke(main, ["query", "b", "The cat sat on the mat.", "-k", "1", "--json"])
    assert query.exit_code == 0 and json.loads(query.output)["text"] == "The cat sat on the mat."
    bad = runner.invoke(main, ["build", str(source), "--name", "c", "--precision", "fp16"])
    assert bad.exit_code == 2 and "fp16" in bad.output
