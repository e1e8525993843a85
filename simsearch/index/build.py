"""Writing a new index from documents (encoded here) or from precomputed vectors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from simsearch.errors import InputError
from simsearch.readers import Document
from simsearch.store.lexical.analyzer import check_choice, choose, extend_sample
from simsearch.store.write.commit import BuildStats, commit_build, tune_query_texts
from simsearch.store.sql import batches
from simsearch.validate import check_document

if TYPE_CHECKING:
    from simsearch.encode import Encoder

CHUNK = 2048  # documents encoded and stored per step: memory stays flat as corpora grow


def write_encoded(
    documents: Iterable[Document | str],
    path: Path,
    encoder: Encoder,
    *,
    force: bool,
    progress: Callable[[int], None] | None,
    index_type: str,
    target_recall: float,
    shards: int | None,
    lexical: bool,
    tune_queries: Sequence[str] | None,
    analyzer: str = "auto",
) -> BuildStats:
    """Encode ``documents`` with ``encoder`` and commit them as the new index at ``path``;
    ``analyzer`` names the lexical analyzer (``auto``: chosen from the first documents)."""
    from simsearch.store.write.bulk import open_sink
    from simsearch.store.index_types import builder

    builder(index_type, target_recall)  # bad types fail before any encoding
    check_choice(analyzer)
    started = time.perf_counter()
    tune_vectors = encode_tune_queries(encoder, tune_queries)  # bad queries fail before documents
    truncated, sample = 0, list[str]()
    with open_sink(path, shards=shards, force=force) as sink:
        for chunk in batches(as_documents(documents), CHUNK):
            vectors, cut = encoder.encode_counting([d.text for d in chunk], progress=progress)
            truncated += cut
            sink.write(chunk, vectors)
            extend_sample(sample, chunk)
        count = commit_build(
            sink,
            encoder,
            path,
            truncated,
            index_type,
            target_recall,
            lexical=choose(analyzer, sample) if lexical else None,
            tune_vectors=tune_vectors,
        )
    return BuildStats(count, truncated, time.perf_counter() - started)


def write_vectors(
    pairs: Iterable[tuple[Sequence[Document], np.ndarray]],
    path: Path,
    encoder: Encoder,
    *,
    force: bool,
    index_type: str,
    target_recall: float,
    shards: int | None,
    tune_queries: Sequence[str] | None,
    analyzer: str = "auto",
) -> BuildStats:
    """Commit documents whose vectors are already computed (by ``encoder``'s model) at ``path``."""
    from simsearch.store.write.bulk import open_sink
    from simsearch.store.index_types import builder

    builder(index_type, target_recall)  # bad types fail before anything is read
    check_choice(analyzer)
    started = time.perf_counter()
    tune_vectors = encode_tune_queries(encoder, tune_queries)
    sample: list[str] = []
    with open_sink(path, shards=shards, force=force) as sink:
        for docs, vectors in pairs:
            sink.write(list(docs), check_unit_rows(vectors, int(encoder.dim), docs))
            extend_sample(sample, docs)
        count = commit_build(
            sink,
            encoder,
            path,
            0,
            index_type,
            target_recall,
            lexical=choose(analyzer, sample),
            tune_vectors=tune_vectors,
        )
    return BuildStats(count, 0, time.perf_counter() - started)


def encode_tune_queries(encoder: Encoder, queries: Sequence[str] | None) -> np.ndarray | None:
    """The ANN tuning queries as vectors of the index's model (None: tune on stored vectors)."""
    texts = tune_query_texts(queries)
    return None if texts is None else np.asarray(encoder.encode(texts), dtype=np.float32)


def check_unit_rows(vectors: object, dim: int, docs: Sequence[Document]) -> np.ndarray:
    """Precomputed vectors as float32 ``(n, dim)`` rows, refused unless finite and unit length."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape != (len(docs), dim):
        raise InputError(f"expected {len(docs)} vectors of {dim} dimensions, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3))
    if bad.size:
        doc = docs[int(bad[0])]
        raise InputError(
            f"{doc.where or doc.id}: the vector of {doc.id!r} is not a finite unit vector "
            f"(norm {norms[bad[0]]:.4g}); give L2-normalised vectors"
        )
    return matrix


def as_documents(items: Iterable[Document | str]) -> Iterator[Document]:
    """Documents as given, plain strings numbered from 1; blank texts are not documents."""
    for number, item in enumerate(items, 1):
        doc = item if isinstance(item, Document) else Document(str(number), str(item), {}, f"item {number}")
        check_document(doc)
        if doc.text.strip():
            yield doc
