"""The FAISS side: exact search of a few queries (numpy over FAISS's own vectors) equals FAISS's."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import pytest

from simsearch.store import faiss_file as vectors
from simsearch.store import huge_pages as pages
from simsearch.store.faiss_file import EXACT_FACTORY, FaissFile
from simsearch.store.huge_pages import huge_pages


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def exact_file(n: int = 700, dim: int = 48) -> tuple[FaissFile, faiss.Index]:
    """An exact index with sparse row ids (as after deletions), and an independent FAISS twin."""
    data = unit_rows(n, dim, seed=0)
    ids = np.arange(n, dtype=np.int64) * 3 + 5
    index = faiss.index_factory(dim, EXACT_FACTORY, faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(data, ids)
    twin = faiss.index_factory(dim, EXACT_FACTORY, faiss.METRIC_INNER_PRODUCT)
    twin.add_with_ids(data, ids)
    return FaissFile(index, "IndexFlat"), twin


@pytest.mark.parametrize("queries", [1, 3, 7])
@pytest.mark.parametrize("k", [1, 10, 64])
def test_fast_exact_path_returns_what_faiss_returns(queries: int, k: int) -> None:
    file, twin = exact_file()
    asked = unit_rows(queries, 48, seed=queries)
    assert file._exact_view() is not None  # the numpy path is the one under test
    scores, ids = file.search(asked, k)
    want_scores, want_ids = twin.search(asked, k)
    assert ids.dtype == want_ids.dtype and ids.shape == want_ids.shape == (queries, k)
    np.testing.assert_array_equal(ids, want_ids)
    # Same products, summed in another order by BLAS than by FAISS: equal to float32 rounding.
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=2e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_k_beyond_the_index_returns_every_row_once() -> None:
    file, twin = exact_file(n=12)
    scores, ids = file.search(unit_rows(1, 48, seed=9), 50)
    assert sorted(ids[0].tolist()) == sorted(faiss.vector_to_array(twin.id_map).tolist())  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index
    assert np.all(np.diff(scores[0]) <= 0)


def test_view_follows_adds_and_removals() -> None:
    file, twin = exact_file()
    query = unit_rows(1, 48, seed=3)
    file.search(query, 5)
    extra, extra_ids = unit_rows(40, 48, seed=4), np.arange(10_000, 10_040, dtype=np.int64)
    for index in (file.index, twin):
        index.add_with_ids(extra, extra_ids)
        index.remove_ids(np.array([5, 8, 11], dtype=np.int64))  # type: ignore[arg-type]  # faiss's stubs leave out remove_ids(id array)
    np.testing.assert_array_equal(file.search(query, 20)[1], twin.search(query, 20)[1])


def test_view_follows_a_removal_and_an_add_that_keep_the_count() -> None:
    """Same count, other ids: the fast path must not answer from a stale copy of the id map."""
    file, twin = exact_file()
    query = unit_rows(1, 48, seed=3)
    file.search(query, 3)
    for index in (file.index, twin):
        index.remove_ids(np.array([5], dtype=np.int64))  # type: ignore[arg-type]  # faiss's stubs leave out remove_ids(id array)
        index.add_with_ids(query, np.array([99_999], dtype=np.int64))
    scores, ids = file.search(query, 3)
    np.testing.assert_array_equal(ids, twin.search(query, 3)[1])
    assert ids[0, 0] == 99_999 and scores[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_emptied_index_then_refilled() -> None:
    file, twin = exact_file(n=20)
    query = unit_rows(1, 48, seed=8)
    file.search(query, 5)
    every = faiss.vector_to_array(twin.id_map)  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index
    for index in (file.index, twin):
        index.remove_ids(every)  # type: ignore[arg-type]  # faiss's stubs leave out remove_ids(id array)
    assert file.search(query, 5)[1].tolist() == twin.search(query, 1)[1].tolist() == [[-1]]
    for index in (file.index, twin):
        index.add_with_ids(unit_rows(3, 48, seed=9), np.array([7, 8, 9], dtype=np.int64))
    np.testing.assert_array_equal(file.search(query, 5)[1], twin.search(query, 3)[1])


def test_huge_pages_move_keeps_results(monkeypatch) -> None:
    monkeypatch.setattr(vectors, "_HUGE_PAGES_AFTER", 3)
    moved = []

    def huge_pages(array: np.ndarray) -> bool:
        moved.append(array.shape)
        return True

    monkeypatch.setattr(vectors, "huge_pages", huge_pages)
    file, twin = exact_file()
    query = unit_rows(1, 48, seed=5)
    for _ in range(5):
        np.testing.assert_array_equal(file.search(query, 10)[1], twin.search(query, 10)[1])
    assert moved == [(700, 48)]  # once, on the third query


def test_an_hnsw_graph_moves_its_vectors_and_links_once(monkeypatch) -> None:
    monkeypatch.setattr(vectors, "_HUGE_PAGES_AFTER", 3)
    moved = []

    def huge_pages(array: np.ndarray) -> bool:
        moved.append(array.nbytes)
        return True

    monkeypatch.setattr(pages, "huge_pages", huge_pages)
    data = unit_rows(700, 48, seed=0)
    index: Any = faiss.index_factory(48, "IDMap2,HNSW8", faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(data, np.arange(700, dtype=np.int64) * 3 + 5)
    file = FaissFile(index, "IndexHNSWFlat")
    query = unit_rows(1, 48, seed=5)
    first = file.search(query, 10)
    for _ in range(4):
        np.testing.assert_array_equal(file.search(query, 10)[1], first[1])
    inner: Any = faiss.downcast_index(index.index)  # faiss's stubs type every index as the base Index
    links = inner.hnsw.neighbors.size() * 4
    assert sorted(moved) == sorted([links, 700 * 48 * 4])  # once, on the third query
    assert not pages.graph_huge_pages(faiss.index_factory(48, EXACT_FACTORY, faiss.METRIC_INNER_PRODUCT))


def test_huge_pages_leave_the_contents_alone() -> None:
    data = unit_rows(30_000, 96, seed=6)  # 11 MB: a few whole 2 MiB pages
    before = data.copy()
    assert isinstance(huge_pages(data), bool)  # False where the kernel cannot; never an error
    np.testing.assert_array_equal(data, before)
    assert huge_pages(data[:10]) is False  # smaller than one huge page: nothing to move


@pytest.mark.parametrize("queries", [2, 20])
def test_a_search_leaves_the_process_thread_count_as_it_found_it(queries: int) -> None:
    """FAISS's OpenMP thread count is process-wide: a search scopes its own choice."""
    index: Any = faiss.index_factory(48, "IDMap2,HNSW8", faiss.METRIC_INNER_PRODUCT)  # not the numpy path
    index.add_with_ids(unit_rows(200, 48, seed=1), np.arange(200, dtype=np.int64))
    file = FaissFile(index, "HNSW")
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(3)
        file.search(unit_rows(queries, 48, seed=2), 5)
        assert faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(before)
