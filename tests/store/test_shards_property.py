"""Sharded == unsharded: on exact shards the merged top-k is the unsharded exact index's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsearch import Document, Index


class TableEncoder:
    """Texts ``v<i>`` encode to row i of a fixed random unit matrix: exact control of the vectors."""

    model_id = "test/table"
    model_path = Path("/nonexistent/table")
    pooling = "mean"
    max_length = 8
    precision = "fp32"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.dim = vectors.shape[1]

    def encode(self, texts, **kwargs):
        return self.encode_counting(texts)[0]

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        rows = [int(t[1:]) for t in ([texts] if isinstance(texts, str) else texts)]
        return self.vectors[rows], 0


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 240), shards=st.integers(1, 6), k=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_sharded_topk_equals_unsharded_exact(
    tmp_path_factory, n: int, shards: int, k: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    encoder = TableEncoder(_unit(rng, n, 12))
    docs = [Document(f"d{rng.integers(1 << 40)}-{i}", f"v{i}", {"i": i}) for i in range(n)]
    home = tmp_path_factory.mktemp("prop")
    plain = Index.build(docs, home / "plain", encoder, index_type="flat")
    sharded = Index.build(docs, home / "sharded", encoder, index_type="flat", shards=shards)
    assert "shards" in sharded.manifest and sharded.shards == shards
    assert len(sharded) == len(plain) == n
    queries = _unit(rng, 9, 12)  # 9 >= FAISS's batch path, and single queries below
    for batch in (queries, queries[:1], queries[1:4]):
        want = plain.search_vectors(batch, k)
        got = sharded.search_vectors(batch, k)
        for w, g in zip(want, got):
            assert [h.id for h in g] == [h.id for h in w]
            assert np.allclose([h.score for h in g], [h.score for h in w], atol=1e-6)
            assert [h.rank for h in g] == list(range(1, len(w) + 1))
            assert [h.metadata for h in g] == [h.metadata for h in w]
    reopened = Index.open(home / "sharded")
    assert [h.id for h in reopened.search_vectors(queries[:1], k)[0]] == [
        h.id for h in plain.search_vectors(queries[:1], k)[0]
    ]
    for index in (plain, sharded, reopened):
        index.close()
