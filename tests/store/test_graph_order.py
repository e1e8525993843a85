"""HNSW graph layout: breadth-first renumbering keeps every answer and row id."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import pytest

from simsearch.store import graph_order


def unit_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def built(factory: str, vectors: np.ndarray, ids: np.ndarray | None = None) -> Any:
    index: Any = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)  # scalar quantisers learn their ranges; the rest ignore it
    if ids is None:
        index.add(vectors)
    else:
        index.add_with_ids(vectors, ids)
    return index


@pytest.mark.parametrize("factory", ["IDMap2,HNSW8", "IDMap,HNSW8", "IDMap2,HNSW8,SQ8"])
def test_reordering_keeps_answers_and_row_ids(factory):
    vectors = unit_vectors(3000)
    rowids = np.arange(3000, dtype=np.int64) * 7 + 11  # not positions: the map must follow
    index = built(factory, vectors, rowids)
    queries = unit_vectors(40, seed=1)
    before = index.search(queries, 10)
    inner: Any = faiss.downcast_index(index.index)
    entry = int(inner.hnsw.entry_point)

    assert graph_order.reorder(index)

    after = index.search(queries, 10)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0], rtol=0, atol=1e-6)
    positions = faiss.vector_to_array(index.id_map)
    assert positions[0] == rowids[entry] and inner.hnsw.entry_point == 0  # walks start at row 0
    assert sorted(positions) == sorted(rowids)
    stored = faiss.downcast_index(inner.storage).reconstruct_n(0, 3000)
    original = dict(zip(rowids.tolist(), vectors))
    for position in (0, 1, 1500, 2999):  # each position holds the vector of the row id it names
        np.testing.assert_allclose(stored[position], original[int(positions[position])], atol=0.02)
    if isinstance(index, faiss.IndexIDMap2):  # row id -> vector lookups follow the new positions
        np.testing.assert_array_equal(
            index.reconstruct(int(rowids[5])), stored[list(positions).index(rowids[5])]
        )


def test_breadth_first_is_a_permutation_with_neighbours_close():
    index: Any = built("HNSW8", unit_vectors(3000, dim=3))  # few dimensions: neighbours are local
    order = graph_order.breadth_first(index.hnsw, 3000)
    assert sorted(order.tolist()) == list(range(3000)) and order[0] == index.hnsw.entry_point

    def median_gap(hnsw: Any) -> float:  # how far apart (in rows) a node and its neighbours sit
        links = faiss.vector_to_array(hnsw.neighbors)
        offsets = faiss.vector_to_array(hnsw.offsets)[:3000].astype(np.int64)
        bottom = links[offsets[:, None] + np.arange(hnsw.nb_neighbors(0))]
        rows = np.repeat(np.arange(3000)[:, None], bottom.shape[1], axis=1)
        return float(np.median(np.abs(bottom - rows)[bottom >= 0]))

    scattered = median_gap(index.hnsw)
    graph_order.reorder(index)
    assert median_gap(index.hnsw) < scattered / 2


def test_other_indexes_are_left_alone():
    vectors = unit_vectors(500)
    for factory in ("IDMap2,Flat", "IVF4,Flat"):
        index = built(factory, vectors, np.arange(500, dtype=np.int64))
        assert not graph_order.reorder(index)
    tiny = built("IDMap2,HNSW8", vectors[:1], np.array([5], dtype=np.int64))
    assert not graph_order.reorder(tiny)
    assert tiny.search(vectors[:1], 1)[1][0, 0] == 5
