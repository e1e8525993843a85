"""ANN tuning on the user's queries (``--tune-queries``) and the ivfpq refine stage."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

from simsearch import Index, InputError
from simsearch.cli.main import main
from simsearch.cli.render import ann_line
from simsearch.index import encode_tune_queries
from simsearch.store import index_types as ann
from simsearch.store import tuning

WORDS = (
    "bread fresh stale keep oven flour cat dog mat sat park walk train station ticket "
    "city rain sun cloud river bridge music guitar song piano book novel page author"
).split()


def corpus(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + f" {i}" for i in range(n)]


def test_ivfpq_has_a_refine_stage_tuned_to_the_target(fake_encoder, index_dir):
    texts = corpus(800)
    index = Index.build(
        texts, "pq", fake_encoder, index_dir=index_dir, index_type="ivfpq", target_recall=0.95
    )
    info = index.manifest["ann"]
    assert info["factory"].startswith("IDMap2,IVF") and info["factory"].endswith(",Refine(SQ8)")
    assert list(info["search_params"]) == ["nprobe", "k_factor_rf"]
    assert info["target_met"] is True and info["recall_at_10"] >= 0.95
    assert info["tuned_on"] == {"kind": "stored", "n": 800}
    reopened = Index.open("pq", index_dir=index_dir, encoder=fake_encoder)
    assert reopened.search(texts[5], k=1)[0].text == texts[5]  # refined scores: the copy comes first
    stats = reopened.add(["a brand new bread and river document", texts[6] + " changed"])
    assert stats is not None
    assert reopened.search("a brand new bread and river document", k=1)[0].text.startswith("a brand new")


def test_factory_strings_of_ivfpq():
    assert ann.factory_for("ivfpq", 100_000, 384) == "IDMap2,IVF1024,PQ96x8np,Refine(SQ8)"
    knobs = ann.search_knobs(
        __import__("faiss").index_factory(16, "IDMap2,IVF4,PQ4x4np,Refine(SQ8)", 0)  # inner product
    )
    assert list(knobs) == ["nprobe", "k_factor_rf"] and knobs["nprobe"][-1] == 4


def test_tune_queries_are_recorded_kept_and_reused(fake_encoder, index_dir):
    texts = corpus(400)
    asked = [f"{a} {b}" for a, b in zip(WORDS, reversed(WORDS))]
    index = Index.build(
        texts,
        "q",
        fake_encoder,
        index_dir=index_dir,
        index_type="hnsw",
        target_recall=0.9,
        tune_queries=asked,
    )
    info = index.manifest["ann"]
    assert info["tuned_on"] == {"kind": "queries", "n": len(asked)} and info["tune_queries"] == len(asked)
    assert "tuning queries (--tune-queries)" in ann_line(dict(index.manifest))
    index.add(["one more stale bread document"])  # HNSW cannot remove: rebuilt and tuned again
    index.delete([index.search(texts[0], k=1)[0].id])
    assert index.manifest["ann"]["tuned_on"] == {"kind": "queries", "n": len(asked)}
    index.compact()
    assert index.manifest["ann"]["tuned_on"] == {"kind": "queries", "n": len(asked)}
    plain = Index.build(texts, "s", fake_encoder, index_dir=index_dir, index_type="hnsw", target_recall=0.9)
    assert plain.manifest["ann"]["tuned_on"] == {"kind": "stored", "n": 400}
    assert "400 held-out stored vectors" in ann_line(dict(plain.manifest))


def test_tuning_on_queries_measures_recall_on_them(fake_encoder, index_dir, tmp_path):
    """Queries far from every stored vector are easy or hard in their own way: the recall the
    manifest records is theirs, reproduced by measuring those queries directly."""
    import sqlite3

    texts = corpus(600)
    asked = corpus(120, seed=99)
    index = Index.build(
        texts, "m", fake_encoder, index_dir=index_dir, index_type="ivf", target_recall=0.9, tune_queries=asked
    )
    db = sqlite3.connect(index.path / index.manifest["files"]["sqlite"]["name"])
    kept = tuning.stored_queries(db, fake_encoder.dim)
    assert kept is not None
    np.testing.assert_allclose(kept, fake_encoder.encode(asked), atol=1e-7)
    none = np.full(len(kept), -1, dtype=np.int64)
    kth = tuning.exact_kth_scores(db, fake_encoder.dim, kept, none)
    import faiss

    from simsearch.store.faiss_file import apply_search_params

    built = faiss.read_index(str(index.path / index.manifest["files"]["faiss"]["name"]))
    apply_search_params(built, index.manifest["ann"]["search_params"])
    measured = tuning.recall_at_k(built, db, fake_encoder.dim, kept, none, kth)
    assert measured == pytest.approx(index.manifest["ann"]["recall_at_10"], abs=1e-4)


def test_library_refuses_empty_or_string_tune_queries(fake_encoder, index_dir):
    with pytest.raises(InputError, match="hold no query"):
        Index.build(corpus(50), "e", fake_encoder, index_dir=index_dir, tune_queries=["", "  "])
    with pytest.raises(InputError, match="not one string"):
        Index.build(corpus(50), "e", fake_encoder, index_dir=index_dir, tune_queries="bread")
    assert not (index_dir / "e").exists()
    many = encode_tune_queries(fake_encoder, [f"query {i}" for i in range(tuning.TUNE_QUERIES + 500)])
    assert many is not None and many.shape == (tuning.TUNE_QUERIES, fake_encoder.dim)


def test_older_manifest_without_tuned_on_still_renders():
    manifest = {
        "index_type": "hnsw",
        "ann": {
            "factory": "IDMap2,HNSW32",
            "search_params": {"efSearch": 64},
            "recall_at_10": 0.96,
            "tune_queries": 1000,
            "target_recall": 0.95,
            "target_met": True,
        },
    }
    assert ann_line(manifest).endswith("efSearch=64 gives recall@10 0.960 on 1000 held-out stored vectors")


def test_cli_tune_queries(fake_encoder, index_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("simsearch.encode.torch_encoder.Encoder", lambda *a, **k: fake_encoder)
    source = tmp_path / "docs.txt"
    source.write_text("\n".join(corpus(300)) + "\n", encoding="utf-8")
    asked = tmp_path / "asked.txt"
    asked.write_text("stale bread\n\ncity train ticket\npiano song\n", encoding="utf-8")
    runner = CliRunner()
    build = ["build", str(source), "--index-type", "hnsw", "--target-recall", "0.9"]
    result = runner.invoke(main, [*build, "--name", "c", "--tune-queries", str(asked)])
    assert result.exit_code == 0, result.output
    assert "on 3 tuning queries (--tune-queries)" in result.output
    info = runner.invoke(main, ["info", "c"])
    assert "ann.tuned_on.kind: queries" in info.output and "ann.tuned_on.n: 3" in info.output
    shown = json.loads(runner.invoke(main, ["info", "c", "--json"]).output)
    assert shown["ann"]["tuned_on"] == {"kind": "queries", "n": 3}
    piped = runner.invoke(main, [*build, "--name", "p", "--tune-queries", "-"], input="stale bread\n")
    assert piped.exit_code == 0 and "on 1 tuning queries" in piped.output

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    result = runner.invoke(main, [*build, "--name", "d", "--tune-queries", str(empty)])
    assert result.exit_code == 1 and f"Error: {empty}: no queries in it" in result.output
    assert "Traceback" not in result.output
    binary = tmp_path / "bad.txt"
    binary.write_bytes(b"fine\n\xff\xfe broken\n")
    result = runner.invoke(main, [*build, "--name", "d", "--tune-queries", str(binary)])
    assert result.exit_code == 1 and f"{binary}:2: invalid UTF-8" in result.output
    result = runner.invoke(main, [*build, "--name", "d", "--tune-queries", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (index_dir / "d").exists()


def test_filtered_search_on_a_refined_ivfpq_index(fake_encoder, index_dir, monkeypatch):
    """A filter through FAISS's selector (not the small exact path) reaches the refine stage's base
    index with IDMap2's translation: every hit is allowed, and the top hits equal exact search."""
    from simsearch.readers import Document
    from simsearch.search import dense_filtered as filtered

    monkeypatch.setattr(filtered, "EXACT_UP_TO", 10)
    monkeypatch.setattr(filtered, "EXACT_SHARE", 0.0)
    texts = corpus(800)
    docs = [Document(f"d{i}", text, {"half": i % 2}) for i, text in enumerate(texts)]
    index = Index.build(docs, "f", fake_encoder, index_dir=index_dir, index_type="ivfpq", target_recall=0.95)
    for probe in (3, 10, 501):
        hits = index.search(texts[probe], k=5, where={"half": 1}, mode="dense")
        assert len(hits) == 5 and all(hit.metadata["half"] == 1 for hit in hits)
        allowed = [d for d in docs if d.metadata["half"] == 1]
        exact = fake_encoder.encode([d.text for d in allowed]) @ fake_encoder.encode([texts[probe]])[0]
        assert hits[0].score == pytest.approx(float(exact.max()), abs=0.02)  # SQ8-refined scores
