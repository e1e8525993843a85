"""Exact single queries: simsearch's exact path vs plain numpy vs FAISS, interleaved query by query.

The machine is shared, so the contenders take turns on every query (in a rotating order) and the
ratio is taken per query: a load spike then slows all of them alike instead of one column.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from simsearch.store.exact_scan import exact_small
from simsearch.store.faiss_file import EXACT_FACTORY, FaissFile

from .stats import summary, table


def _read_back(data: np.ndarray, directory: Path) -> tuple[FaissFile, FaissFile, faiss.Index]:
    """Two readings of one written exact index (as ``Index.open`` reads it), and a plain FAISS one."""
    index = faiss.index_factory(data.shape[1], EXACT_FACTORY, faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(data, np.arange(1, len(data) + 1, dtype=np.int64))
    file = directory / "exact.faiss"
    faiss.write_index(index, str(file))
    del index
    plain = faiss.IndexFlatIP(data.shape[1])
    plain.add(data)
    return FaissFile.read(file), FaissFile.read(file), plain


def _view_without_move(file: FaissFile):
    file._flat_queries = 0  # keep it below the huge-page threshold: this row measures 4 KiB pages
    return file._exact_view()


def contenders(data: np.ndarray, directory: Path) -> dict:
    """name -> one single-query search, all over the same vectors, k = 10."""
    simsearch, small_pages, plain = _read_back(data, directory)

    def faiss_one_thread(q: np.ndarray):
        faiss.omp_set_num_threads(1)  # FAISS's fastest setting for one query (issue 5)
        return plain.search(q[None, :], 10)

    return {
        "numpy: `vectors @ q` + argpartition (own array)": lambda q: np.argpartition(-(data @ q), 10)[:10],
        "simsearch exact path (FaissFile.search)": lambda q: simsearch.search(q[None, :], 10),
        "  same, before its vectors move to huge pages": lambda q: exact_small(
            _view_without_move(small_pages), q[None, :], 10
        ),
        "FAISS IndexFlatIP.search, 1 thread": faiss_one_thread,
    }


def run(vectors: np.ndarray, sizes: list[int], rounds: int = 3, queries: int = 200, log=print) -> list[str]:
    rows = []
    for n in [s for s in sizes if s <= len(vectors) - queries]:
        data = np.ascontiguousarray(vectors[:n], dtype=np.float32)
        asked = np.asarray(vectors[len(vectors) - queries :], dtype=np.float32)  # not in the index
        with tempfile.TemporaryDirectory() as tmp:
            runners = contenders(data, Path(tmp))
            names = list(runners)
            for q in asked[:40]:  # warm up; simsearch moves its vectors to huge pages at query 32
                for fn in runners.values():
                    fn(q)
            p50: dict[str, list[float]] = {name: [] for name in names}
            ratios: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                times: dict[str, list[float]] = {name: [] for name in names}
                for i, q in enumerate(asked):
                    order = names[(i + r) % len(names) :] + names[: (i + r) % len(names)]
                    for name in order:
                        start = time.perf_counter()
                        runners[name](q)
                        times[name].append(time.perf_counter() - start)
                for name in names:
                    p50[name].append(float(np.median(times[name])))
                    ratios[name].append(float(np.median(np.array(times[name]) / np.array(times[names[0]]))))
            for name in names:
                rows.append([f"{n:,}", name, summary(p50[name], 1000, 2), summary(ratios[name], 1, 3)])
        log(f"exact: {n} done")
    return [
        f"Single query, k=10, {queries} real query vectors not in the index, {rounds} rounds; "
        "the contenders take turns on every query (rotating order). p50 ms and the median of "
        "per-query time ratios to numpy: median (min-max) over rounds. numpy and simsearch "
        "use numpy's BLAS with its default threads.",
        "",
    ] + table(["vectors", "search", "p50 ms", "time vs numpy"], rows)
