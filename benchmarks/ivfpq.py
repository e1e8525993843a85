"""ivfpq with its refine stage on real embeddings: bytes per vector and recall@10 (no timings).

The index is built and tuned by ``simsearch.store.index_types.build_index`` exactly as
``simsearch build --index-type ivfpq`` does (tuned on 1,000 stored vectors), over the cached real
vectors less the last 1,000, which are held out as queries that are not in the index. Recall@10 is
measured on 1,000 other stored vectors (own row excluded, as the ANN table does) and on the
held-out real sentences. A quality measurement: it needs no benchmark lock.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import faiss
import numpy as np

from .stats import table

HELD_OUT = 1000


def run(vectors: np.ndarray, log=print) -> list[str]:
    from simsearch.store import index_types as ann

    from .ann_table import vector_db

    data, queries = np.asarray(vectors[:-HELD_OUT], np.float32), np.asarray(vectors[-HELD_OUT:], np.float32)
    n, dim = data.shape
    rows = []
    with tempfile.TemporaryDirectory(prefix="simsearch-ivfpq-") as tmp:
        db = vector_db(data, Path(tmp))
        for kind in ("ivfpq", "IVF{nlist},PQ{m}x8np"):
            factory = kind.format(nlist=ann.ivf_lists(n), m=ann.pq_subquantizers(dim))
            built, fields = ann.build_index(db, dim, factory, ann.DEFAULT_TARGET_RECALL)
            info = fields["ann"]
            stored_ids = ann.sample_rowids(db, 1000, seed=2)
            stored = ann.fetch_vectors(db, dim, stored_ids)
            recall_stored = ann.recall_at_k(
                built.index, db, dim, stored, stored_ids, ann.exact_kth_scores(db, dim, stored, stored_ids)
            )
            none = np.full(len(queries), -1, dtype=np.int64)
            recall_real = ann.recall_at_k(
                built.index, db, dim, queries, none, ann.exact_kth_scores(db, dim, queries, none)
            )
            rows.append(
                [
                    kind if kind == "ivfpq" else "ivfpq before (no refine)",
                    info["factory"],
                    ", ".join(f"{k}={v}" for k, v in info["search_params"].items()),
                    f"{info['recall_at_10']:.3f}",
                    str(info["target_met"]).lower(),
                    f"{recall_stored:.3f}",
                    f"{recall_real:.3f}",
                    f"{len(faiss.serialize_index(built.index)) / n:.0f}",
                ]
            )
            log(f"ivfpq: {kind} done")
    head = (
        f"{n:,} real sentence embeddings (dim {dim}); {HELD_OUT:,} further real ones held out as queries. "
        "Built and tuned to recall@10 >= 0.95 as `simsearch build --index-type ivfpq` does; the second row "
        "is the factory ivfpq had before the refine stage, tuned the same way. Bytes per vector: the "
        "serialised FAISS index over the count (float32 vectors are 1,536)."
    )
    return [head, ""] + table(
        [
            "type",
            "FAISS factory",
            "tuned",
            "recall@10 (tuning sample)",
            "target_met",
            "recall@10 (1,000 other stored)",
            "recall@10 (1,000 held-out real)",
            "bytes/vector",
        ],
        rows,
    )
