"""Index types: exact or approximate (ANN) FAISS indexes, tuned to a measured recall.

``--index-type`` takes ``auto``, ``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or any FAISS factory
string. An ANN index is tuned after it is built: a sample of the stored vectors is searched as
held-out queries (each query's own row is dropped from both answers), recall@10 is measured
against exact search, and the smallest search parameter (``efSearch`` for HNSW, ``nprobe`` for
IVF) that reaches the target recall is kept. The choice and the measured recall go into the
manifest under ``ann``; the parameter is re-applied whenever the index is opened.
"""

from __future__ import annotations

import math
import re
import sqlite3
from typing import Any, Callable

import faiss
import numpy as np

from simsearch.store.sql import select_in
from simsearch.errors import InputError
from simsearch.store.faiss_file import FaissFile, apply_search_params, describe, from_blobs, iter_vectors
from simsearch.store.manifest import EXACT_FACTORY, Manifest

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq")
#: ``auto`` keeps exact search up to this many vectors. Measured with ``python -m benchmarks``
#: on real embeddings (README.md, "Speed"): HNSW answers faster at every size, but up to ~20k
#: 384-d vectors an exact single query costs under a millisecond on one thread, a fraction of the
#: ~2.5 ms it takes to embed the query, so exactness is kept while it is nearly free; at 50k exact
#: search already costs ~3 ms and at 100k ~7 ms, more than the whole 5 ms query budget.
AUTO_EXACT_MAX = 20_000
DEFAULT_TARGET_RECALL = 0.95
RECALL_K = 10
TUNE_QUERIES = 1000
_TRAIN_PER_LIST = 50  # k-means wants 30-256 points per centroid; 50 keeps training quick
_SEARCH_VALUES = {
    "efSearch": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024),
    "nprobe": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024),
}

Builder = Callable[[sqlite3.Connection, int], "tuple[FaissFile, dict[str, Any]]"]


def check_index_type(index_type: str) -> str:
    """A known type name or something that parses as a FAISS factory string."""
    if index_type in INDEX_TYPES:
        return index_type
    try:
        faiss.index_factory(8 * 12, index_type, faiss.METRIC_INNER_PRODUCT)
    except (RuntimeError, TypeError) as exc:  # TypeError: text FAISS cannot take (a lone surrogate)
        reason = faiss_reason(exc, "not understood") if isinstance(exc, RuntimeError) else "not ASCII text"
        raise InputError(
            f"unknown index type {index_type!r} ({reason}); use one of "
            f"{', '.join(INDEX_TYPES)} or a FAISS factory string such as HNSW32"
        ) from None
    return index_type


def faiss_reason(exc: Exception, default: str) -> str:
    """FAISS's message without its C++ function signature and source location."""
    lines = str(exc).strip().splitlines()
    return re.sub(r"^Error in .*? at \S+:\d+: ", "", lines[-1]) if lines else default


def check_target_recall(target: float) -> float:
    if not 0.0 < target <= 1.0:
        raise InputError(f"target recall must be in (0, 1], got {target}")
    return target


def choose_kind(index_type: str, count: int) -> str:
    """``auto`` resolved for ``count`` vectors: exact while small, HNSW beyond the break-even."""
    if index_type != "auto":
        return index_type
    return "flat" if count <= AUTO_EXACT_MAX else "hnsw"


def factory_for(kind: str, count: int, dim: int) -> str:
    """The FAISS factory string of a type name for ``count`` vectors (others pass through)."""
    nlist = ivf_lists(count)
    if kind == "flat":
        return EXACT_FACTORY
    if kind == "hnsw":
        return "IDMap2,HNSW32"
    if kind == "ivf":
        return f"IVF{nlist},Flat"
    if kind == "ivfpq":
        # k-means wants >= 39 points per centroid (FAISS warns below that): 2**bits <= count / 39
        bits = max(1, min(8, int(math.log2(max(count // 39, 2)))))
        return f"IVF{nlist},PQ{pq_subquantizers(dim)}x{bits}np"  # np: no slow polysemous training
    # IVF indexes take row ids themselves; anything else maps them with IDMap2.
    return kind if kind.startswith("IDMap") or _is_ivf(kind) else f"IDMap2,{kind}"


def ivf_lists(count: int) -> int:
    """About 4 sqrt(n) inverted lists (a power of two), with enough points each to train."""
    lists = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(max(count, 1)))))
    return int(max(1, min(lists, count // 39 or 1)))


def pq_subquantizers(dim: int) -> int:
    """4 dimensions per 8-bit code: 96 bytes for 384-d vectors instead of 1,536."""
    for m in (dim // 4, dim // 8, dim // 2, dim):
        if m and dim % m == 0:
            return m
    return dim


def _is_ivf(factory: str) -> bool:
    index = faiss.index_factory(8 * 12, factory, faiss.METRIC_INNER_PRODUCT)
    return isinstance(faiss.downcast_index(index), faiss.IndexIVF)


def builder(index_type: str = "auto", target_recall: float = DEFAULT_TARGET_RECALL) -> Builder:
    """A function building the FAISS index of a staged SQLite file, for ``StoreWriter.commit``."""
    check_index_type(index_type)
    check_target_recall(target_recall)

    def build(db: sqlite3.Connection, dim: int) -> tuple[FaissFile, dict[str, Any]]:
        return build_index(db, dim, index_type, target_recall)

    return build


def build_index(
    db: sqlite3.Connection, dim: int, index_type: str, target_recall: float
) -> tuple[FaissFile, dict[str, Any]]:
    """Build, train and tune; returns the index and the manifest fields describing it."""
    count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    kind = choose_kind(index_type, count)
    factory = factory_for(kind, count, dim)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(sample_vectors(db, dim, _training_size(index, count)))
        for ids, vectors in iter_vectors(db, dim):
            index.add_with_ids(vectors, ids)
    except RuntimeError as exc:  # a factory string that does not fit these vectors
        reason = faiss_reason(exc, "failed")
        raise InputError(
            f"cannot build FAISS index {factory!r} for {count} vectors of dim {dim}: "
            f"{reason}; choose another --index-type"
        ) from None
    info: dict[str, Any] = {"requested": index_type, "factory": factory, "target_recall": target_recall}
    param = search_parameter(index)
    if param is None or count < 2:
        info.update(recall_at_10=1.0 if _is_exact(index) else None, search_params={})
    else:
        value, recall, queries = tune(db, dim, index, param, target_recall)
        info.update(
            search_params={param: value},
            recall_at_10=round(recall, 4),
            target_met=recall >= target_recall,
            tune_queries=queries,
        )
    name = kind if kind in INDEX_TYPES else "factory"
    return FaissFile(index, describe(index)), {"index_type": name, "ann": info}


def _training_size(index: faiss.Index, count: int) -> int:
    try:
        lists = faiss.extract_index_ivf(index).nlist
    except RuntimeError:
        lists = 256  # PQ codebooks without IVF
    return min(count, max(lists, 256) * _TRAIN_PER_LIST)


def _is_exact(index: faiss.Index) -> bool:
    return describe(index) == "IndexFlat" or describe(index) == "IndexFlatIP"


def search_parameter(index: faiss.Index) -> str | None:
    """The knob trading speed for recall: ``efSearch`` (HNSW), ``nprobe`` (IVF) or None."""
    try:
        faiss.extract_index_ivf(index)
        return "nprobe"
    except RuntimeError:
        pass
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return "efSearch" if hasattr(inner, "hnsw") else None


def rebuild_builder(manifest: Manifest) -> Builder:
    """A builder making the same kind of index as ``manifest`` records (for add / delete / repair)."""
    info = manifest.ann
    return builder(info.get("requested", "flat"), info.get("target_recall", DEFAULT_TARGET_RECALL))


def keeps_kind(manifest: Manifest, count: int) -> bool:
    """Whether an index of ``manifest`` still has the right type at ``count`` vectors.

    ``auto`` switches from exact to ANN past :data:`AUTO_EXACT_MAX`; an update crossing that
    line rebuilds (and re-tunes) instead of patching the old index.
    """
    requested = manifest.ann.get("requested", "flat")
    return choose_kind(requested, count) == choose_kind(requested, manifest.count)


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


def tune(
    db: sqlite3.Connection,
    dim: int,
    index: faiss.Index,
    param: str,
    target: float,
    queries: int = TUNE_QUERIES,
) -> tuple[int, float, int]:
    """The smallest value of ``param`` whose recall@10 reaches ``target`` with 97.5% confidence
    (or the best one tried), with its measured mean recall."""
    query_ids = sample_rowids(db, queries, seed=1)
    vectors = fetch_vectors(db, dim, query_ids)
    kth = exact_kth_scores(db, dim, vectors, query_ids)
    values = candidate_values(index, param)
    measured = lambda value: _measure(index, db, dim, param, value, vectors, query_ids, kth)  # noqa: E731
    value, _ = smallest_reaching(values, measured, target)
    apply_search_params(index, {param: value})
    return value, recall_at_k(index, db, dim, vectors, query_ids, kth), len(query_ids)


def candidate_values(index: faiss.Index, param: str) -> list[int]:
    values = list(_SEARCH_VALUES[param])
    if param == "nprobe":
        nlist = faiss.extract_index_ivf(index).nlist
        values = [v for v in values if v < nlist] + [nlist]
    return values


def _measure(
    index: faiss.Index,
    db: sqlite3.Connection,
    dim: int,
    param: str,
    value: int,
    vectors: np.ndarray,
    query_ids: np.ndarray,
    kth: np.ndarray,
) -> float:
    apply_search_params(index, {param: value})
    recalls = recall_per_query(index, db, dim, vectors, query_ids, kth)
    if len(recalls) < 2:
        return float(recalls.mean())
    # Decide on a lower confidence bound (mean - 2 standard errors), so the promise holds for
    # queries beyond the tuning sample too: on 131k real embeddings the plain mean picked an
    # efSearch that gave 0.938 on other held-out queries against a 0.95 target.
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
