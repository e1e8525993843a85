"""Index types: each one builds and searches through the library and the CLI; tuning logic."""

from __future__ import annotations

import json
import random
from contextlib import closing

import numpy as np
import pytest
from click.testing import CliRunner

from simsearch.store.manifest import Manifest
from simsearch import Index, InputError
from simsearch.store import index_types as ann
from simsearch.store.generation import Store
from simsearch.cli.main import main

WORDS = (
    "bread fresh stale keep oven flour cat dog mat sat park walk train station ticket "
    "city rain sun cloud river bridge music guitar song piano book novel page author "
    "coffee tea milk sugar cup phone screen battery charge code bug test release"
).split()


def corpus(n: int = 600, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + f" {i}" for i in range(n)]


@pytest.mark.parametrize(
    "index_type, param",
    [
        ("flat", None),
        ("hnsw", "efSearch"),
        ("ivf", "nprobe"),
        ("ivfpq", "nprobe"),
        ("HNSW16", "efSearch"),
        ("IVF8,Flat", "nprobe"),
        ("PCA8,IVF4,Flat", "nprobe"),
    ],
)
def test_every_type_builds_tunes_and_searches(fake_encoder, index_dir, index_type, param):
    texts = corpus()
    index = Index.build(
        texts, "t", fake_encoder, index_dir=index_dir, index_type=index_type, target_recall=0.9
    )
    info = index.manifest["ann"]
    assert info["requested"] == index_type
    if param is None:
        assert info["search_params"] == {} and info["recall_at_10"] == 1.0
    else:
        assert list(info["search_params"])[0] == param
        assert 0.0 < info["recall_at_10"] <= 1.0
        assert info["target_met"] == (info["recall_at_10"] >= 0.9)  # the flag says what was measured
        if not index_type.startswith("PCA"):  # lossy codes may fall short (ivfpq has a refine stage)
            assert info["target_met"] and info["recall_at_10"] >= 0.9
    reopened = Index.open("t", index_dir=index_dir, encoder=fake_encoder)
    hits = reopened.search(texts[42], k=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    if index_type != "ivfpq" and not index_type.startswith("PCA"):
        assert hits[0].text == texts[42]  # an exact copy is found by every uncompressed type
    else:  # lossy codes: the copy is still among the first hits
        assert texts[42] in [hit.text for hit in hits]


def test_search_parameter_is_reapplied_on_open(fake_encoder, index_dir):
    import faiss

    Index.build(corpus(), "h", fake_encoder, index_dir=index_dir, index_type="hnsw", target_recall=0.99)
    index = Index.open("h", index_dir=index_dir, encoder=fake_encoder)
    wanted = index.manifest["ann"]["search_params"]["efSearch"]
    with closing(Store.open(index.path)) as store:  # opened as Index.open opens it
        hnsw = faiss.downcast_index(store.faiss.index.index)  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index
    assert hnsw.hnsw.efSearch == wanted  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index

    Index.build(corpus(), "i", fake_encoder, index_dir=index_dir, index_type="ivf", target_recall=0.99)
    index = Index.open("i", index_dir=index_dir, encoder=fake_encoder)
    with closing(Store.open(index.path)) as store:
        assert (
            faiss.extract_index_ivf(store.faiss.index).nprobe
            == index.manifest["ann"]["search_params"]["nprobe"]
        )


def test_hnsw_graphs_are_built_denser_than_faiss_default(fake_encoder, index_dir):
    for name, index_type in (("h", "hnsw"), ("f", "HNSW16")):
        Index.build(corpus(), name, fake_encoder, index_dir=index_dir, index_type=index_type)
        index = Index.open(name, index_dir=index_dir, encoder=fake_encoder)
        assert index.manifest["ann"]["ef_construction"] == ann.HNSW_EF_CONSTRUCTION != 40
        with closing(Store.open(index.path)) as store:  # kept in the FAISS file for later additions
            assert ann.hnsw_of(store.faiss.index).efConstruction == ann.HNSW_EF_CONSTRUCTION
            assert ann.hnsw_of(store.faiss.index).entry_point == 0  # stored in breadth-first order
    Index.build(corpus(), "i", fake_encoder, index_dir=index_dir, index_type="ivf")
    assert "ef_construction" not in Index.open("i", index_dir=index_dir, encoder=fake_encoder).manifest["ann"]


def test_auto_is_exact_while_small(fake_encoder, index_dir, monkeypatch):
    index = Index.build(corpus(50), "a", fake_encoder, index_dir=index_dir)
    assert index.manifest["index_type"] == "flat" and index.manifest["ann"]["requested"] == "auto"
    monkeypatch.setattr(ann, "AUTO_EXACT_MAX", 100)
    index = Index.build(corpus(300), "b", fake_encoder, index_dir=index_dir)
    assert index.manifest["index_type"] == "hnsw"
    assert index.manifest["ann"]["recall_at_10"] >= 0.95


def test_bad_index_types(fake_encoder, index_dir):
    with pytest.raises(InputError, match="unknown index type 'hnws'") as raised:
        Index.build(corpus(20), "x", fake_encoder, index_dir=index_dir, index_type="hnws")
    assert ".cpp" not in str(raised.value)  # FAISS's C++ location is noise to a user
    with pytest.raises(InputError, match="cannot build FAISS index 'IVF16,PQ32"):
        Index.build(corpus(100), "x", fake_encoder, index_dir=index_dir, index_type="IVF16,PQ32")
    assert not (index_dir / "x").exists()
    with pytest.raises(InputError, match="target recall"):
        Index.build(corpus(20), "x", fake_encoder, index_dir=index_dir, target_recall=1.5)


def test_cli_index_type_and_info(fake_encoder, index_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("simsearch.encode.torch_encoder.Encoder", lambda *a, **k: fake_encoder)
    source = tmp_path / "docs.txt"
    texts = corpus(400)
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(
        main, ["build", str(source), "--name", "c", "--index-type", "ivf", "--target-recall", "0.9"]
    )
    assert result.exit_code == 0, result.output
    assert "Index type ivf (IVF" in result.output and "nprobe=" in result.output
    info = runner.invoke(main, ["info", "c"])
    assert "ann.search_params.nprobe:" in info.output and "ann.recall_at_10:" in info.output
    query = runner.invoke(main, ["query", "c", texts[3], "-k", "1", "--json"])
    assert query.exit_code == 0, query.output
    assert json.loads(query.output)["text"] == texts[3]
    bad = runner.invoke(main, ["build", str(source), "--name", "d", "--index-type", "nope"])
    assert bad.exit_code == 1 and "Error: unknown index type 'nope'" in bad.output
    bad = runner.invoke(main, ["build", str(source), "--name", "d", "--target-recall", "0"])
    assert bad.exit_code == 2


def test_smallest_reaching_finds_the_first_value_at_target():
    recalls = {1: 0.5, 2: 0.7, 4: 0.9, 8: 0.96, 16: 0.99, 32: 1.0}
    calls = []

    def measure(value):
        calls.append(value)
        return recalls[value]

    assert ann.smallest_reaching(list(recalls), measure, 0.95) == (8, 0.96)
    assert len(calls) <= 3  # binary search, not a sweep
    assert ann.smallest_reaching(list(recalls), recalls.__getitem__, 0.4) == (1, 0.5)
    # Unreachable target: the best value tried is kept (and reported as below target).
    assert ann.smallest_reaching([1, 2, 4], {1: 0.1, 2: 0.2, 4: 0.3}.__getitem__, 0.95) == (4, 0.3)


def test_efsearch_candidates_step_finely():
    import faiss

    values = ann.candidate_values(faiss.index_factory(8, "HNSW8", faiss.METRIC_INNER_PRODUCT), "efSearch")
    assert values == sorted(set(values)) and values[0] <= 16 and values[-1] >= 1024
    # the tuner's pick is at most one step past the cheapest setting reaching the target
    assert all(later <= 1.25 * earlier for earlier, later in zip(values, values[1:]))


def test_exact_kth_and_recall_hold_out_the_query_and_count_ties():
    import sqlite3

    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[10:40] = vectors[9]  # 31 equal vectors: any 10 of them are a right answer
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, vector BLOB)")
    db.executemany(
        "INSERT INTO documents VALUES (?, ?)",
        [(i + 1, v.astype("<f4").tobytes()) for i, v in enumerate(vectors)],
    )
    ids = np.array([10, 100, 250], dtype=np.int64)
    kth = ann.exact_kth_scores(db, 8, vectors[ids - 1], ids)
    for query, qid, got in zip(vectors[ids - 1], ids, kth):
        scores = vectors @ query
        scores[qid - 1] = -np.inf  # its own row is held out
        assert got == pytest.approx(np.sort(scores)[::-1][9], abs=1e-6)
    exact = faiss.index_factory(8, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    exact.add_with_ids(vectors, np.arange(1, 301, dtype=np.int64))
    assert ann.recall_at_k(exact, db, 8, vectors[ids - 1], ids, kth) == pytest.approx(1.0)
    reversed_ids = faiss.index_factory(8, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    reversed_ids.add_with_ids(vectors[::-1].copy(), np.arange(300, 0, -1, dtype=np.int64))
    assert ann.recall_at_k(reversed_ids, db, 8, vectors[ids - 1], ids, kth) == pytest.approx(1.0)
    # Far-off answers score below the k-th best: an index returning them has recall 0.
    worst = np.argsort(vectors @ vectors[99])[:12] + 1

    class Wrong:
        def search(self, queries, k):
            return None, np.tile(worst[:k], (len(queries), 1))

    # Wrong stands in for a faiss index (only .search is called): typed as one, it is not one
    assert ann.recall_at_k(Wrong(), db, 8, vectors[[99]], np.array([100]), kth[[1]]) == 0.0  # type: ignore[arg-type]


def test_factory_strings_and_sizes():
    assert ann.factory_for("flat", 10, 384) == "IDMap2,Flat"
    assert ann.factory_for("hnsw", 10, 384) == "IDMap2,HNSW48"
    assert ann.factory_for("ivf", 100_000, 384) == "IVF1024,Flat"
    assert ann.factory_for("ivfpq", 100_000, 384) == "IDMap2,IVF1024,PQ96x8np,Refine(SQ8)"
    assert ann.factory_for("HNSW16", 10, 384) == "IDMap2,HNSW16"
    assert ann.factory_for("IVF64,Flat", 10, 384) == "IVF64,Flat"
    assert ann.ivf_lists(10) == 1 and ann.ivf_lists(1_000_000) == 4096
    assert ann.choose_kind("auto", ann.AUTO_EXACT_MAX) == "flat"
    assert ann.choose_kind("auto", ann.AUTO_EXACT_MAX + 1) == "hnsw"


def test_rebuild_keeps_the_type_and_stray_params_are_ignored(fake_encoder, index_dir):
    import sqlite3

    import faiss

    from simsearch.store.faiss_file import apply_search_params

    index = Index.build(
        corpus(300), "r", fake_encoder, index_dir=index_dir, index_type="ivf", target_recall=0.9
    )
    db = sqlite3.connect(index.path / index.manifest["files"]["sqlite"]["name"])
    rebuilt, fields = ann.rebuild_builder(Manifest.from_dict(index.manifest))(db, fake_encoder.dim)
    assert fields["index_type"] == "ivf" and "nprobe" in fields["ann"]["search_params"]
    flat = faiss.index_factory(8, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    apply_search_params(flat, {"efSearch": 64, "nprobe": 4})  # not applicable: skipped, no error


def test_small_exact_searches_equal_faiss():
    import faiss

    from simsearch.store.faiss_file import FaissFile

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.index_factory(16, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(vectors, np.arange(1000, 1500, dtype=np.int64))
    file = FaissFile(index, "IndexFlat")
    file.search(vectors[:1], 1)
    assert file._flat is not None  # the numpy path is taken for a few queries
    index.add_with_ids(vectors[:100] * -1, np.arange(2000, 2100, dtype=np.int64))  # view remade
    for queries in (vectors[:1], vectors[3:6]):
        scores, ids = file.search(queries, 7)
        expected_scores, expected_ids = index.search(queries, 7)
        np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
        assert (ids == expected_ids).all()
    scores, ids = file.search(vectors[:1], 5000)  # k beyond the size: everything, best first
    assert ids.shape == (1, 600) and scores[0, 0] == pytest.approx(1.0) and np.all(np.diff(scores[0]) <= 1e-6)
