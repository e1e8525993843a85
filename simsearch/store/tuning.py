"""Tuning an ANN index's search parameters to a recall target, on query vectors or stored ones.

Recall@10 is measured against exact search, judged by true score. The queries are the user's own
(``build --tune-queries FILE``, encoded with the index's model by the caller: the store makes no
vectors), kept in the SQLite file's ``tune_queries`` table so that every later rebuild of the FAISS
file (add, delete, compact, repair) tunes on them again; without them, 1,000 stored vectors drawn
reproducibly, each one's own row dropped from both answers. Stored vectors are a poor stand-in
where the collection is denser than its queries (measured at 1M in benchmarks/README.md: they made
HNSW's tuner pick efSearch 1024 where real queries needed 128), hence the option.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable

import faiss
import numpy as np

from simsearch.store.faiss_file import apply_search_params, from_blobs, iter_vectors
from simsearch.store.sql import select_in

RECALL_K = 10
TUNE_QUERIES = 1000
TABLE = "tune_queries"


@dataclass(frozen=True)
class Sample:
    """Tuning queries: vectors, the row each one is stored as (-1: not stored), and their origin."""

    vectors: np.ndarray
    ids: np.ndarray
    kind: str  # "queries" (given by the user) or "stored" (drawn from the index)


def store_queries(db: sqlite3.Connection, vectors: np.ndarray) -> None:
    """Keep ``vectors`` (float32 unit rows) in the staged SQLite file as the index's tuning queries."""
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(f"CREATE TABLE {TABLE} (rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
    db.executemany(f"INSERT INTO {TABLE} (vector) VALUES (?)", [(row.tobytes(),) for row in rows])
    db.commit()


def stored_queries(db: sqlite3.Connection, dim: int) -> np.ndarray | None:
    """The tuning queries kept by an earlier build, or None (none given, or an older index)."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    if found is None:
        return None
    blobs = [row[0] for row in db.execute(f"SELECT vector FROM {TABLE} ORDER BY rowid")]
    if not blobs or any(len(blob) != 4 * dim for blob in blobs):
        return None  # another model's queries cannot tune this index: sample stored vectors
    return from_blobs(blobs, dim)


def tuning_sample(db: sqlite3.Connection, dim: int) -> Sample:
    queries = stored_queries(db, dim)
    if queries is not None:
        return Sample(queries, np.full(len(queries), -1, dtype=np.int64), "queries")
    ids = sample_rowids(db, TUNE_QUERIES, seed=1)
    return Sample(fetch_vectors(db, dim, ids), ids, "stored")


def sample_rowids(db: sqlite3.Connection, size: int, seed: int = 0) -> np.ndarray:
    """``size`` row ids drawn without replacement (sorted), reproducibly."""
    rowids = np.array([r[0] for r in db.execute("SELECT rowid FROM documents")], dtype=np.int64)
    if size >= len(rowids):
        return rowids
    return np.sort(np.random.default_rng(seed).choice(rowids, size, replace=False))


def sample_vectors(db: sqlite3.Connection, dim: int, size: int, seed: int = 0) -> np.ndarray:
    return fetch_vectors(db, dim, sample_rowids(db, size, seed))


def fetch_vectors(db: sqlite3.Connection, dim: int, rowids: np.ndarray) -> np.ndarray:
    keys = [int(r) for r in rowids]
    found = dict(select_in(db, "SELECT rowid, vector FROM documents WHERE rowid IN ({marks})", keys))
    return from_blobs([found[r] for r in keys], dim)


def exact_kth_scores(
    db: sqlite3.Connection, dim: int, queries: np.ndarray, query_ids: np.ndarray, k: int = RECALL_K
) -> np.ndarray:
    """Per query, the exact k-th best score over the stored vectors, the query's own row excluded.

    Streams the stored vectors in chunks, so memory stays at one chunk plus k scores per query.
    """
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for ids, vectors in iter_vectors(db, dim):
        scores = queries @ vectors.T
        scores[query_ids[:, None] == ids[None, :]] = -np.inf  # held out: never its own neighbour
        scores = np.concatenate([best, scores], axis=1)
        best = -np.partition(-scores, k - 1, axis=1)[:, :k]
    return best.min(axis=1)


def recall_at_k(
    index: faiss.Index,
    db: sqlite3.Connection,
    dim: int,
    queries: np.ndarray,
    query_ids: np.ndarray,
    kth: np.ndarray,
    k: int = RECALL_K,
) -> float:
    """Mean of :func:`recall_per_query`."""
    return float(np.mean(recall_per_query(index, db, dim, queries, query_ids, kth, k)))


def recall_per_query(
    index: faiss.Index,
    db: sqlite3.Connection,
    dim: int,
    queries: np.ndarray,
    query_ids: np.ndarray,
    kth: np.ndarray,
    k: int = RECALL_K,
) -> np.ndarray:
    """Per query, the share of the k results (own row dropped) scoring at least the exact k-th best.

    Judged by true score, not by id, so ties count: the corpus repeats some sentences dozens of
    times, and any one of equal vectors is a right answer. Scores are recomputed from the stored
    vectors because compressed indexes (PQ) return approximate ones.
    """
    _, found = index.search(queries, k + 1)
    kept = [[int(i) for i in row if i != qid and i >= 0][:k] for row, qid in zip(found, query_ids)]
    wanted = np.array(sorted({i for row in kept for i in row}), dtype=np.int64)
    stored = dict(zip(wanted.tolist(), fetch_vectors(db, dim, wanted))) if len(wanted) else {}
    recalls = np.ones(len(queries))
    for n, (row, query, threshold) in enumerate(zip(kept, queries, kth)):
        if np.isfinite(threshold):
            recalls[n] = sum(float(stored[i] @ query) >= threshold - 1e-5 for i in row) / k
    return recalls


@dataclass(frozen=True)
class Tuned:
    params: dict[str, int]
    recall: float  # mean recall@10 of the sample at ``params``
    sample: Sample


def tune(
    db: sqlite3.Connection,
    dim: int,
    index: faiss.Index,
    knobs: dict[str, list[int]],
    target: float,
    cost: Callable[[dict[str, int]], float],
) -> Tuned:
    """The cheapest ``knobs`` setting (by ``cost``) whose recall@10 reaches ``target`` with 97.5%
    confidence, or the best one tried; ``knobs`` maps each parameter to its increasing values.

    One knob (efSearch, nprobe): a binary search. Two (nprobe, then a refine stage's ``k_factor_rf``):
    a binary search over the first for each value of the second, in increasing order, stopping
    once a larger value no longer lowers the cost.
    """
    sample = tuning_sample(db, dim)
    kth = exact_kth_scores(db, dim, sample.vectors, sample.ids)

    def measured(params: dict[str, int]) -> float:
        apply_search_params(index, dict(params))
        return lower_bound(recall_per_query(index, db, dim, sample.vectors, sample.ids, kth))

    (first, values), *rest = knobs.items()
    outers: list[dict[str, int]] = [{rest[0][0]: v} for v in rest[0][1]] if rest else [{}]
    best: tuple[dict[str, int], float] | None = None
    for outer in outers:

        def at(value: int, outer: dict[str, int] = outer) -> float:
            return measured({first: value, **outer})

        value, bound = smallest_reaching(values, at, target)
        params = {first: value, **outer}
        if best is None or _better((params, bound), best, target, cost):
            best = (params, bound)
        elif best[1] >= target:
            break  # reached, and a larger refine factor no longer pays
    assert best is not None
    apply_search_params(index, dict(best[0]))
    recall = float(np.mean(recall_per_query(index, db, dim, sample.vectors, sample.ids, kth)))
    return Tuned(best[0], recall, sample)


def _better(
    new: tuple[dict[str, int], float],
    old: tuple[dict[str, int], float],
    target: float,
    cost: Callable[[dict[str, int]], float],
) -> bool:
    if (new[1] >= target) != (old[1] >= target):
        return new[1] >= target
    return cost(new[0]) < cost(old[0]) if new[1] >= target else new[1] > old[1]


def lower_bound(recalls: np.ndarray) -> float:
    """Mean recall less two standard errors.

    Deciding on this bound keeps the promise for queries beyond the tuning sample: on 131k real
    embeddings the plain mean picked an efSearch that gave 0.938 on other held-out queries against
    a 0.95 target.
    """
    if len(recalls) < 2:
        return float(recalls.mean())
    return float(recalls.mean() - 2 * recalls.std(ddof=1) / np.sqrt(len(recalls)))


def smallest_reaching(values: list[int], measure: Callable[[int], float], target: float) -> tuple[int, float]:
    """Binary search over increasing ``values`` (recall grows with them); best tried if none reach."""
    low, high = 0, len(values) - 1
    seen: dict[int, float] = {}
    while low <= high:
        middle = (low + high) // 2
        seen[middle] = measure(values[middle])
        if seen[middle] >= target:
            high = middle - 1
        else:
            low = middle + 1
    reaching = [i for i, r in seen.items() if r >= target]
    best = min(reaching) if reaching else max(seen, key=lambda i: (seen[i], i))
    return values[best], seen[best]
