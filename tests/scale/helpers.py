"""Reading every stored row of an index (plain or sharded), to compare two builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simsearch import Index
from simsearch.store.faiss_file import from_blobs


def stored_rows(path: Path) -> dict[str, tuple[str, Any, np.ndarray]]:
    index = Index.open(path)  # no model is loaded: only the stored rows are read
    stores = getattr(index, "_stores", None) or [index._store]
    rows = {}
    try:
        for store in stores:
            dim = int(store.manifest["dim"])
            for doc_id, text, meta, blob in store.db.execute(
                "SELECT id, text, metadata, vector FROM documents"
            ):
                rows[doc_id] = (text, json.loads(meta), from_blobs([blob], dim)[0])
    finally:
        index.close()
    return rows


def assert_same_index(a: Path, b: Path, *, cosine: float = 0.99999) -> None:
    rows_a, rows_b = stored_rows(a), stored_rows(b)
    assert sorted(rows_a) == sorted(rows_b)
    for doc_id, (text, meta, vector) in rows_a.items():
        other = rows_b[doc_id]
        assert (text, meta) == other[:2], doc_id
        assert float(vector @ other[2]) >= cosine, doc_id
