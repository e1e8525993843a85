"""Index: build, open and search, glueing the encoder to the store."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence, overload

import numpy as np

from simsearch import __version__
from simsearch.errors import IndexNotFoundError, InputError, ModelError, QueryError, SimsearchError
from simsearch.store.home import locate
from simsearch.readers import Document
from simsearch.store.manifest import EXACT_FACTORY, Manifest, identity_mismatch, identity_of
from simsearch.store.reader import Store
from simsearch.store.writer import StoreWriter
from simsearch.store.faiss_file import require_finite, to_blob
from simsearch.store.fingerprint import check_model_files, fingerprint_fields
from simsearch.validate import check_document, dumps, json_ready, unicode_problem

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport

log = logging.getLogger("simsearch")
_CHUNK = 2048  # documents encoded and stored per step: memory stays flat as corpora grow


@dataclass(frozen=True)
class Hit:
    """One search result; ``score`` is the cosine similarity, ``rank`` starts at 1."""

    rank: int
    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, query: str) -> dict[str, Any]:
        """The hit as programs see it: ``query --json`` lines and the HTTP API share this shape.

        Always valid JSON: a NaN or Infinity stored by an older version (in metadata, or a score
        from a damaged vector) becomes null, with a warning on the log (stderr for the CLI).
        """
        score, bad_score = json_ready(round(self.score, 6))
        metadata, bad_metadata = json_ready(self.metadata)
        if bad_score or bad_metadata:
            log.warning("warning: document %r has %s; written as null (re-add the document with finite "
                        "values, and run `simsearch verify` on the index)", self.id,
                        "a non-finite score" if bad_score else "NaN or Infinity in its metadata")
        return {"query": query, "rank": self.rank, "id": self.id, "score": score,
                "text": self.text, "metadata": metadata}


@dataclass(frozen=True)
class BuildStats:
    """What a build did: documents stored, inputs cut at the model's limit, seconds spent."""

    documents: int
    truncated: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else float("inf")


def _content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Index:
    """A searchable index directory. Create with :meth:`build`, reopen with :meth:`open`.

    >>> index = Index.build(["first doc", "second doc"], "demo")
    >>> index.search("a query", k=1)[0].text
    """

    def __init__(self, store: Store, encoder: Encoder | None = None) -> None:
        self._store = store
        self._encoder = encoder
        self.last_build: BuildStats | None = None
        self._exported = encoder is not None  # an encoder given (or built with) was exported then

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as a plain dict (every key, a copy)."""
        return self._store.manifest.to_dict()

    def __len__(self) -> int:
        return len(self._store)

    @property
    def derived_ids(self) -> str:
        """How sources added to this index derive ids from file paths (``ReadOptions.derived_ids``)."""
        return derived_id_rule(self._store.manifest)

    def __repr__(self) -> str:
        m = self._store.manifest
        return f"Index({str(self.path)!r}, count={m.count}, model={m.model!r}, pooling={m.pooling!r})"

    @classmethod
    def open(cls, name_or_path: str | os.PathLike[str], *, index_dir: str | os.PathLike[str] | None = None,
             encoder: Encoder | None = None) -> Index:
        """Open an existing index by name (under the index home) or path; validates its files.

        ``encoder`` may be passed to share a loaded model; it must be the index's own model and
        pooling (a different one would give vectors from another space).
        """
        path = locate(name_or_path, index_dir)
        if not os.path.exists(path):  # (False, not OSError, for a name too long for the disk)
            raise IndexNotFoundError(
                f"index {os.fspath(name_or_path)!r} not found in {path.parent}; "
                "run `simsearch list` to see the indexes there"
            )
        store = Store.open(path)
        if encoder is not None:
            try:
                check_encoder(store.manifest, encoder)
            except BaseException:
                store.close()
                raise
        return cls(store, encoder)

    @classmethod
    def build(
        cls,
        documents: Iterable[Document | str],
        name_or_path: str | os.PathLike[str],
        encoder: Encoder | None = None,
        *,
        index_dir: str | os.PathLike[str] | None = None,
        force: bool = False,
        progress: Callable[[int], None] | None = None,
        index_type: str = "auto",
        target_recall: float = 0.95,
    ) -> Index:
        """Encode ``documents`` (Documents or plain strings) and write a new index atomically.

        ``index_type`` is ``auto`` (exact while small, then a tuned ANN index), ``flat``, ``hnsw``,
        ``ivf``, ``ivfpq`` or a FAISS factory string; ANN search parameters are tuned on the stored
        vectors to reach ``target_recall`` (recall@10 against exact search).

        Raises :class:`~simsearch.errors.IndexExistsError` if it exists and ``force`` is False,
        and :class:`~simsearch.errors.InputError` for duplicate ids or an empty input; in every
        failure case the previous index (or none) is left as it was.
        """
        if encoder is None:
            from simsearch.encode.torch_encoder import Encoder

            encoder = Encoder()
        from simsearch.store.index_types import builder

        faiss_builder = builder(index_type, target_recall)  # bad types fail before any encoding
        path = locate(name_or_path, index_dir)
        started = time.perf_counter()
        truncated = 0
        with StoreWriter(path, force=force) as writer:
            assert writer.db is not None  # open inside the block
            for chunk in _chunks(_as_documents(documents), _CHUNK):
                vectors, cut = encoder.encode_counting([d.text for d in chunk], progress=progress)
                truncated += cut
                _insert(writer.db, chunk, vectors)
            count = writer.db.execute("SELECT count(*) FROM documents").fetchone()[0]
            if count == 0:
                raise InputError("the input holds no documents (only empty lines or records?)")
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            writer.commit(_manifest_fields(encoder, path, now, now, truncated), faiss_builder)
        from simsearch.encode.onnx_encoder import prepare

        prepare(encoder)  # export for fast queries now, while the model is loaded anyway
        index = cls(Store.open(path), encoder)
        index.last_build = BuildStats(count, truncated, time.perf_counter() - started)
        return index

    @property
    def encoder(self) -> Encoder:
        """The index's own encoder (same model, pooling and max length), loaded on first use.

        Loading writes nothing: the ONNX export a later process may use is written by
        :meth:`build` and by the first :meth:`search` that ran without it (see docs/library.md).
        """
        if self._encoder is None:
            self._encoder = load_encoder(self._store.manifest)
            m = self._store.manifest
            if self._encoder.dim != m.dim:
                raise SimsearchError(f"model {m.model!r} now gives {self._encoder.dim}-dim vectors "
                                     f"but the index holds {m.dim}-dim ones; rebuild the index")
        return self._encoder

    # A str is also a Sequence[str]: the first overload wins for it, as intended.
    @overload
    def search(self, query: str, k: int = 10, *,  # type: ignore[overload-overlap]
               min_score: float | None = None) -> list[Hit]: ...
    @overload
    def search(self, query: Sequence[str], k: int = 10, *,
               min_score: float | None = None) -> list[list[Hit]]: ...

    def search(self, query: str | Sequence[str], k: int = 10, *,
               min_score: float | None = None) -> list[Hit] | list[list[Hit]]:
        """Nearest documents by cosine: ``list[Hit]`` for a string, one list per query for a list."""
        single = isinstance(query, str)
        queries: list[str] = [query] if isinstance(query, str) else list(query)
        if not queries:
            raise QueryError("no query given")
        check_query(queries, k, min_score)
        encoder = self.encoder
        vectors = encoder.encode(queries)
        if not self._exported:
            from simsearch.encode.onnx_encoder import prepare

            self._exported = True
            prepare(encoder)  # the documented moment: so the next process takes the fast path
        results = self.search_vectors(vectors, k, min_score=min_score)
        return results[0] if single else results

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *, min_score: float | None = None) -> list[list[Hit]]:
        """Search with already-encoded unit query vectors (one row per query)."""
        store = self._store  # one generation for both steps, even if a write reopens meanwhile
        scores, rowids = store.faiss.search(vectors, k)
        # a non-finite score (a NaN vector written by an older version) is no match: verify finds it
        keep = [[(float(s), int(r)) for s, r in zip(srow, rrow)
                 if r >= 0 and np.isfinite(s) and (min_score is None or s >= min_score)]
                for srow, rrow in zip(scores, rowids)]
        found = store.fetch(r for row in keep for _, r in row)
        return [[Hit(rank, found[r][0], score, found[r][1], found[r][2])
                 for rank, (score, r) in enumerate(row, 1)] for row in keep]

    def add(self, documents: Iterable[Document | str], *, batch_size: int | None = None,
            progress: Callable[[int], None] | None = None) -> AddStats:
        """Upsert ``documents`` by id with the index's own model, as one atomic write.

        Unchanged documents (same text hash and metadata) are not re-encoded; changed texts are
        re-embedded and replaced. Plain strings get their content hash as id. Duplicate ids in
        the input raise :class:`~simsearch.errors.InputError` and nothing is written.
        """
        from simsearch.store.updates import add_documents

        stats = add_documents(self.path, documents, self._store.manifest, lambda: self.encoder,
                              batch_size=batch_size, progress=progress)
        self._reopen(stats.generation)
        return stats

    def delete(self, ids: Iterable[str]) -> DeleteStats:
        """Delete documents by id, atomically; unknown ids are reported in the stats."""
        from simsearch.store.updates import delete_documents

        stats = delete_documents(self.path, ids)
        self._reopen(stats.generation)
        return stats

    def compact(self) -> CompactStats:
        """Reclaim the space of deleted and replaced documents (SQLite VACUUM, FAISS rebuilt)."""
        from simsearch.store.updates import compact_index

        stats = compact_index(self.path)
        self._reopen(stats.generation)
        return stats

    def verify(self, repair: bool = False) -> VerifyReport:
        """Check manifest, checksums, FAISS/SQLite agreement and the model; ``repair`` rebuilds
        the FAISS file from the stored vectors (no sources needed)."""
        from simsearch.store.verify import verify_index

        report = verify_index(self.path, encoder=self._encoder, repair=repair, load_encoder=load_encoder)
        if report.repaired and report.generation is not None:
            self._reopen(report.generation)
        return report

    def _reopen(self, generation: int) -> None:
        """Follow a write: the old store stays valid for searches already holding it."""
        if generation != self._store.manifest.generation:
            self._store = Store.open(self.path)

    def close(self) -> None:
        self._store.close()


def check_query(queries: Sequence[Any], k: Any, min_score: Any) -> None:
    """Refuse what no search can answer: empty or invalid text, k not a whole number >= 1,
    ``min_score`` not a finite number (before any of it reaches a shared batch)."""
    for number, q in enumerate(queries, 1):
        if not isinstance(q, str) or not q.strip():
            raise QueryError("empty query; give some text to search for")
        problem = unicode_problem(q)
        if problem:
            where = "query" if len(queries) == 1 else f"query {number}"
            raise QueryError(f"{where}: {problem}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be a whole number of at least 1, got {k!r}")
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float))
                                  or not math.isfinite(min_score)):  # NaN would silently drop every hit
        raise QueryError(f"min_score must be a finite number (a cosine, -1 to 1), got {min_score!r}")


def check_encoder(manifest: Manifest, encoder: Encoder) -> None:
    """Refuse an encoder whose model, pooling, dimension or precision differs from the index's."""
    problem = identity_mismatch(manifest.identity, identity_of(encoder))
    if problem:
        raise ModelError(f"index {manifest.name!r} was {problem}")
    check_model_files(manifest, _model_dir(getattr(encoder, "model_path", None)))


def load_encoder(manifest: Manifest) -> Encoder:
    """The index's own encoder: the cached ONNX export when there is one (no torch import), else
    the torch encoder from the model directory the manifest records (or its id)."""
    from simsearch.encode.onnx_encoder import load

    check_model_files(manifest, _model_dir(manifest.model_path))  # the model files of the build
    fast = load(manifest.model, manifest.model_path, manifest.pooling, manifest.max_length,
                manifest.precision, spin=manifest.factory != EXACT_FACTORY)
    if fast is not None:
        return fast
    from simsearch.encode.models import ModelSource
    from simsearch.encode.torch_encoder import Encoder as TorchEncoder

    stored = Path(manifest.model_path)
    if manifest.model_path and stored.is_dir():
        return TorchEncoder(ModelSource(manifest.model, stored), manifest.pooling,
                            max_length=manifest.max_length, precision=manifest.precision)
    encoder = TorchEncoder(manifest.model, manifest.pooling, max_length=manifest.max_length,
                           precision=manifest.precision)
    check_model_files(manifest, _model_dir(encoder.model_path))  # found again by id: check it
    return encoder


def _as_documents(items: Iterable[Document | str]) -> Iterator[Document]:
    """Documents as given, plain strings numbered from 1; blank texts are not documents."""
    for number, item in enumerate(items, 1):
        doc = item if isinstance(item, Document) else Document(str(number), str(item), {}, f"item {number}")
        check_document(doc)
        if doc.text.strip():
            yield doc


def _insert(db: sqlite3.Connection, docs: list[Document], vectors: np.ndarray) -> None:
    _check_unique(db, docs)
    require_finite(vectors, [d.where or repr(d.id) for d in docs])
    rows = [(d.id, d.text, dumps(d.metadata), _content_hash(d.text), to_blob(v))
            for d, v in zip(docs, vectors)]
    db.executemany("INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, ?, ?, ?, ?)", rows)


def _check_unique(db: sqlite3.Connection, docs: list[Document]) -> None:
    """Duplicate ids are an input error naming the second occurrence (before anything is written)."""
    seen: set[str] = set()
    stored: set[str] = set()
    ids = [d.id for d in docs]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        stored.update(r[0] for r in db.execute(f"SELECT id FROM documents WHERE id IN ({marks})", chunk))
    for doc in docs:
        if doc.id in seen or doc.id in stored:
            raise InputError(f"{doc.where}: duplicate document id {doc.id!r}; ids must be unique")
        seen.add(doc.id)


# This version's manifest keys about input handling, in one section of their own.
INPUTS = {"derived_ids": "resolved"}


def derived_id_rule(manifest: Mapping[str, Any]) -> str:
    """The id rule an index was built under: indexes older than the rule keep paths as given,
    so re-adding a source spelled as before still finds its documents."""
    return str((manifest.get("inputs") or {}).get("derived_ids", "as-given"))


def _model_dir(model_path: Any) -> Path | None:
    """The model directory an encoder reads (None for test encoders without one)."""
    return Path(model_path) if model_path and Path(model_path).is_dir() else None


def _manifest_fields(encoder: Encoder, path: Path, created: str, updated: str, truncated: int) -> dict[str, Any]:
    fields = _identity_fields(encoder, path, created, updated, truncated)
    return {**fields, **fingerprint_fields(fields, _model_dir(encoder.model_path))}


def _identity_fields(encoder: Encoder, path: Path, created: str, updated: str, truncated: int) -> dict[str, Any]:
    return {
        "name": path.name,
        "simsearch_version": __version__,
        "model": encoder.model_id,
        "model_path": str(encoder.model_path),
        "pooling": encoder.pooling,
        "dim": encoder.dim,
        "normalized": True,
        "max_length": encoder.max_length,
        "precision": getattr(encoder, "precision", "fp32"),
        "metric": "inner_product",
        "index_type": "flat",
        "truncated": truncated,
        "created": created,
        "updated": updated,
        "inputs": dict(INPUTS),
    }
