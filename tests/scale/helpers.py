"""Reading every stored row of an index (plain or sharded), to compare two builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simsearch import Index


def stored_rows(path: Path) -> dict[str, tuple[str, Any, np.ndarray]]:
    """id -> (text, metadata, vector) of every document, read shard by shard for a sharded index
    (the top manifest lists the shard directories; each is a plain index)."""
    top = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    parts = [path / part["dir"] for part in top["shards"]["parts"]] if "shards" in top else [path]
    rows = {}
    for part in parts:
        index = Index.open(part)  # no model is loaded: only the stored rows are read
        try:
            ids = index.ids()
            documents = {doc.id: doc for doc in index.get(ids)}
            found, vectors = index.get_vectors(ids)
            for n, doc_id in enumerate(found):
                rows[doc_id] = (documents[doc_id].text, documents[doc_id].metadata, vectors[n])
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
