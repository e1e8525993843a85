"""Reading every stored row of an index (plain or sharded), to compare two builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simsearch import Index


def stored_rows(path: Path) -> dict[str, tuple[str, Any, np.ndarray]]:
    index = Index.open(path)  # no model is loaded: only the stored rows are read
    try:
        ids = index.ids()
        documents = {doc.id: doc for doc in index.get(ids)}
        found, vectors = index.get_vectors(ids)
        return {
            doc_id: (documents[doc_id].text, documents[doc_id].metadata, vectors[n])
            for n, doc_id in enumerate(found)
        }
    finally:
        index.close()


def assert_same_index(a: Path, b: Path, *, cosine: float = 0.99999) -> None:
    rows_a, rows_b = stored_rows(a), stored_rows(b)
    assert sorted(rows_a) == sorted(rows_b)
    for doc_id, (text, meta, vector) in rows_a.items():
        other = rows_b[doc_id]
        assert (text, meta) == other[:2], doc_id
        assert float(vector @ other[2]) >= cosine, doc_id
