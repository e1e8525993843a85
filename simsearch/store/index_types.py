"""Index types: exact or approximate (ANN) FAISS indexes, tuned to a measured recall.

``--index-type`` takes ``auto``, ``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or any FAISS factory
string. An ANN index is tuned after it is built (:mod:`simsearch.store.tuning`): the user's
tuning queries (``--tune-queries``) or a sample of the stored vectors are searched, recall@10 is
measured against exact search, and the cheapest search parameters (``efSearch`` for HNSW,
``nprobe`` for IVF, plus ``k_factor_rf`` for a refine stage) that reach the target recall are
kept. The choice, the measured recall and what it was measured on go into the manifest under
``ann``; the parameters are re-applied whenever the index is opened.
"""

from __future__ import annotations

import math
import re
import sqlite3
from typing import Any, Callable

import faiss
import numpy as np

from simsearch.errors import InputError
from simsearch.store import graph_order
from simsearch.store.faiss_file import FaissFile, describe, iter_vectors
from simsearch.store.manifest import EXACT_FACTORY, Manifest
from simsearch.store.tuning import RECALL_K as RECALL_K
from simsearch.store.tuning import TUNE_QUERIES as TUNE_QUERIES
from simsearch.store.tuning import exact_kth_scores as exact_kth_scores
from simsearch.store.tuning import fetch_vectors as fetch_vectors
from simsearch.store.tuning import recall_at_k as recall_at_k
from simsearch.store.tuning import recall_per_query as recall_per_query
from simsearch.store.tuning import sample_rowids as sample_rowids
from simsearch.store.tuning import smallest_reaching as smallest_reaching
from simsearch.store.tuning import Tuned, sample_vectors, store_queries, tune

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq")
#: ``auto`` keeps exact search up to this many vectors. Measured with ``python -m benchmarks``
#: on real embeddings (README.md, "Speed"): HNSW answers faster at every size, but up to ~20k
#: 384-d vectors an exact single query costs under a millisecond on one thread, a fraction of the
#: ~2.5 ms it takes to embed the query, so exactness is kept while it is nearly free; at 50k exact
#: search already costs ~3 ms and at 100k ~7 ms, more than the whole 5 ms query budget.
AUTO_EXACT_MAX = 20_000
DEFAULT_TARGET_RECALL = 0.95
#: The HNSW graph of ``hnsw`` (and ``auto`` past AUTO_EXACT_MAX): M links per vector, and
#: efConstruction candidates kept while linking each added vector (FAISS's default is 40; it is
#: set for factory strings too). Measured at 1M vectors on held-out real queries
#: (benchmarks/README.md, "ANN at 1M"): HNSW32 at efConstruction 40 needed efSearch 192 for
#: recall@10 0.95 (47x the exact QPS); HNSW48 at 128 needs 96 (56x), for ~1.2x the build time of
#: HNSW32 at 128 (about twice that of 40) and 128 more bytes per vector. Since then every HNSW
#: graph is also stored in breadth-first order and searched on huge pages (graph_order.py,
#: huge_pages.graph_huge_pages: ~1.2x faster single queries, same answers).
HNSW_M = 48
HNSW_EF_CONSTRUCTION = 128
_TRAIN_PER_LIST = 50  # k-means wants 30-256 points per centroid; 50 keeps training quick
_SEARCH_VALUES = {
    # steps of at most 1.25x (8 between 64 and 96): the tuner stops at most a step past the
    # cheapest setting that reaches the target; at 1M the old 64 -> 96 step alone cost ~20% QPS
    "efSearch": (16, 20, 24, 28, 32, 40, 48, 56, 64, 72, 80, 88, 96, 112, 128, 144, 160, 192, 224, 256)
    + (320, 384, 448, 512, 640, 768, 896, 1024),
    "nprobe": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024),
    # a refine stage re-scores k * k_factor_rf candidates with its finer codes
    "k_factor_rf": (2, 4, 8, 16, 32, 64),
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
        return f"IDMap2,HNSW{HNSW_M}"
    if kind == "ivf":
        return f"IVF{nlist},Flat"
    if kind == "ivfpq":
        # k-means wants >= 39 points per centroid (FAISS warns below that): 2**bits <= count / 39
        bits = max(1, min(8, int(math.log2(max(count // 39, 2)))))
        # np: no slow polysemous training. PQ codes alone rank too coarsely to reach 0.95 (0.830
        # with every list searched, 131k real vectors); Refine(SQ8) re-scores the best
        # k * k_factor_rf candidates with 8-bit scalar codes (dim bytes a vector, not 4 * dim).
        # FAISS's refine index takes no ids of its own, hence IDMap2.
        return f"IDMap2,IVF{nlist},PQ{pq_subquantizers(dim)}x{bits}np,Refine(SQ8)"
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


def builder(
    index_type: str = "auto",
    target_recall: float = DEFAULT_TARGET_RECALL,
    tune_vectors: np.ndarray | None = None,
) -> Builder:
    """A function building the FAISS index of a staged SQLite file, for ``StoreWriter.commit``.

    ``tune_vectors`` (query vectors from the index's model) are kept in the SQLite file and tune
    this index and every rebuild of it; without them a rebuild tunes on the queries kept before.
    """
    check_index_type(index_type)
    check_target_recall(target_recall)

    def build(db: sqlite3.Connection, dim: int) -> tuple[FaissFile, dict[str, Any]]:
        return build_index(db, dim, index_type, target_recall, tune_vectors)

    return build


def build_index(
    db: sqlite3.Connection,
    dim: int,
    index_type: str,
    target_recall: float,
    tune_vectors: np.ndarray | None = None,
) -> tuple[FaissFile, dict[str, Any]]:
    """Build, train and tune; returns the index and the manifest fields describing it."""
    if tune_vectors is not None:
        if tune_vectors.ndim != 2 or tune_vectors.shape[1] != dim or not len(tune_vectors):
            raise InputError(f"tuning queries must be {dim}-dim vectors, got shape {tune_vectors.shape}")
        store_queries(db, tune_vectors)
    count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    kind = choose_kind(index_type, count)
    factory = factory_for(kind, count, dim)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        graph = hnsw_of(index)
        if graph is not None:
            graph.efConstruction = HNSW_EF_CONSTRUCTION
        if not index.is_trained:
            index.train(sample_vectors(db, dim, _training_size(index, count)))
        for ids, vectors in iter_vectors(db, dim):
            index.add_with_ids(vectors, ids)
        if graph is not None:
            graph_order.reorder(index)  # neighbours close in memory: faster searches, same answers
    except RuntimeError as exc:  # a factory string that does not fit these vectors
        reason = faiss_reason(exc, "failed")
        raise InputError(
            f"cannot build FAISS index {factory!r} for {count} vectors of dim {dim}: "
            f"{reason}; choose another --index-type"
        ) from None
    info: dict[str, Any] = {"requested": index_type, "factory": factory, "target_recall": target_recall}
    if graph is not None:
        info["ef_construction"] = graph.efConstruction
    knobs = search_knobs(index)
    if not knobs or count < 2:
        info.update(recall_at_10=1.0 if _is_exact(index) else None, search_params={})
    else:
        tuned = tune_search(db, dim, index, target_recall)
        info.update(
            search_params=tuned.params,
            recall_at_10=round(tuned.recall, 4),
            target_met=tuned.recall >= target_recall,
            tune_queries=len(tuned.sample.ids),
            tuned_on={"kind": tuned.sample.kind, "n": len(tuned.sample.ids)},
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


def tune_search(db: sqlite3.Connection, dim: int, index: faiss.Index, target_recall: float) -> Tuned:
    """Tune (and set) the search parameters of a built ANN ``index`` of the vectors in ``db``."""
    count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    return tune(db, dim, index, search_knobs(index), target_recall, _cost(index, count, dim))


def search_knobs(index: faiss.Index) -> dict[str, list[int]]:
    """Each search parameter of ``index`` with the values the tuner tries (main knob first)."""
    param = search_parameter(index)
    if param is None:
        return {}
    knobs = {param: candidate_values(index, param)}
    if isinstance(_unwrapped(index), faiss.IndexRefine):
        knobs["k_factor_rf"] = list(_SEARCH_VALUES["k_factor_rf"])
    return knobs


def candidate_values(index: faiss.Index, param: str) -> list[int]:
    values = list(_SEARCH_VALUES[param])
    if param == "nprobe":
        nlist = faiss.extract_index_ivf(index).nlist
        values = [v for v in values if v < nlist] + [nlist]
    return values


def _unwrapped(index: faiss.Index) -> faiss.Index:
    """The index inside an IDMap / IDMap2 wrapper (itself otherwise)."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def _cost(index: faiss.Index, count: int, dim: int) -> Callable[[dict[str, int]], float]:
    """Rough work per query of a search setting, to compare settings that reach the target:
    code bytes scanned in the probed lists plus the vectors a refine stage re-scores."""
    try:
        ivf = faiss.extract_index_ivf(index)
        per_probe = count / ivf.nlist * ivf.code_size
    except RuntimeError:
        per_probe = 0.0

    def cost(params: dict[str, int]) -> float:
        rescored = params.get("efSearch", 0) + RECALL_K * params.get("k_factor_rf", 0)
        return float(params.get("nprobe", 0) * per_probe + rescored * dim)

    return cost


def hnsw_of(index: faiss.Index) -> Any:
    """The HNSW graph of an HNSW index (inside an IDMap wrapper too), or None."""
    inner = _unwrapped(index)
    return inner.hnsw if isinstance(inner, faiss.IndexHNSW) else None


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
