"""Indexes for the query benchmarks, built from cached real vectors instead of re-encoding.

Encoding 100k sentences takes most of an hour on two shared cores; the query path does not care
where the stored vectors came from, so the benchmark stores the cached fp32 vectors of the real
model through the normal ``Index.build`` (same SQLite, same FAISS build and tuning) and queries
with the real encoder. When fewer real vectors are cached than asked for, the rest is a
*synthetic extension*: copies of random real vectors with Gaussian noise, renormalised so each
sits at cosine ~0.9 from its source (a paraphrase-like neighbour). That keeps the anisotropy and
cluster structure of real embeddings, which uniform random vectors would not (ANN recall on
random vectors says nothing); the report states how many vectors were real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simsearch.encode.models import DEFAULT_MODEL, bundled_model_path


class ReplayEncoder:
    """Looks build texts up in a precomputed table; carries the real model's identity."""

    model_id = DEFAULT_MODEL
    pooling = "mean"
    max_length = 256
    precision = "fp32"

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self.model_path = bundled_model_path()
        self.dim = int(vectors.shape[1])
        self._rows = {text: row for row, text in enumerate(texts)}
        self._vectors = vectors

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        return np.asarray(self._vectors[[self._rows[t] for t in texts]], dtype=np.float32), 0


def extend(texts: list[str], vectors: np.ndarray, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` texts and vectors: the real ones, then synthetic neighbours of random real ones."""
    if n <= len(texts):
        return texts[:n], np.asarray(vectors[:n], dtype=np.float32)
    rng = np.random.default_rng(seed)
    extra = n - len(texts)
    sources = rng.integers(0, len(texts), extra)
    noise = rng.normal(size=(extra, vectors.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    synthetic = 0.9 * np.asarray(vectors)[sources] + np.sqrt(1 - 0.81) * noise
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    names = [f"[synthetic {i}] {texts[s]}" for i, s in enumerate(sources)]
    return list(texts) + names, np.concatenate([np.asarray(vectors, dtype=np.float32), synthetic])


def build(name: str, home: Path, texts: list[str], vectors: np.ndarray, index_type: str = "auto"):
    """An index of these (text, vector) pairs under ``home``, through the normal build."""
    from simsearch import Index

    encoder = ReplayEncoder(texts, vectors)
    unique = list(dict.fromkeys(texts))  # the corpus repeats some sentences; ids stay unique
    return Index.build(unique, name, encoder, index_dir=home, force=True, index_type=index_type)
