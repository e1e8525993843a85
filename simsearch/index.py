"""Index: build, open and search, glueing the encoder to the store."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence, overload

import numpy as np

from simsearch.analysis import Analyzer, check_choice, choose, extend_sample
from simsearch.errors import IndexNotFoundError, InputError, ModelError, QueryError, SimsearchError
from simsearch.store.home import locate
from simsearch.readers import Document
from simsearch.store.manifest import EXACT_FACTORY, Manifest, identity_mismatch, identity_of
from simsearch.store.reader import Row, Store
from simsearch.store.sql import batches
from simsearch.store.faiss_file import from_blobs
from simsearch.store.fingerprint import check_model_files
from simsearch.hits import Hit
from simsearch.manifest_fields import check_own_model, derived_id_rule, manifest_fields
from simsearch.manifest_fields import model_dir as _model_dir  # the name the model checks use
from simsearch.validate import check_document, check_queries, check_query, lookup_ids

if TYPE_CHECKING:
    from simsearch.export import Source
    from simsearch.encode import Encoder
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport

# Hit (simsearch.hits) and the query checks (simsearch.validate) are re-exported: callers import
# them from here.
__all__ = [
    "BuildStats",
    "Hit",
    "Index",
    "check_encoder",
    "check_own_model",
    "check_queries",
    "check_query",
    "derived_id_rule",
    "load_encoder",
]

_CHUNK = 2048  # documents encoded and stored per step: memory stays flat as corpora grow


@dataclass(frozen=True)
class BuildStats:
    """What a build did: documents stored, inputs cut at the model's limit, seconds spent."""

    documents: int
    truncated: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else float("inf")


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
        return derived_id_rule(self._identity())

    def __repr__(self) -> str:
        m = self._store.manifest
        return f"Index({str(self.path)!r}, count={m.count}, model={m.model!r}, pooling={m.pooling!r})"

    @classmethod
    def open(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        index_dir: str | os.PathLike[str] | None = None,
        encoder: Encoder | None = None,
        ray: str | None = None,
    ) -> Index:
        """Open an existing index by name (under the index home) or path; validates its files.

        ``encoder`` may be passed to share a loaded model; it must be the index's own model and
        pooling (a different one would give vectors from another space). ``ray`` searches on a
        Ray cluster instead, one actor per shard: ``"auto"`` (the running cluster), an address,
        or ``"local"`` (start one); needs ``simsearch[ray]``.
        """
        path = locate(name_or_path, index_dir)
        if not os.path.exists(path):  # (False, not OSError, for a name too long for the disk)
            raise IndexNotFoundError(
                f"index {os.fspath(name_or_path)!r} not found in {path.parent}; "
                "run `simsearch list` to see the indexes there"
            )
        if ray is not None:
            from simsearch.scale.serve import open_on_ray

            index: Index = open_on_ray(path, ray)
        else:
            index = open_path(path)
        if encoder is not None:
            try:
                check_encoder(index._identity(), encoder)
            except BaseException:
                index.close()
                raise
            index._encoder, index._exported = encoder, True
        return index

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
        shards: int | None = None,
        lexical: bool = True,
        tune_queries: Sequence[str] | None = None,
        analyzer: str = "auto",
    ) -> Index:
        """Encode ``documents`` (Documents or plain strings) and write a new index atomically.

        ``index_type`` is ``auto`` (exact while small, then a tuned ANN index), ``flat``, ``hnsw``,
        ``ivf``, ``ivfpq`` or a FAISS factory string; ANN search parameters are tuned on the stored
        vectors to reach ``target_recall`` (recall@10 against exact search). ``shards=N`` writes N
        shards routed by id hash (a :class:`~simsearch.sharded.ShardedIndex`, each shard of that
        index type); ``None`` writes the plain single-directory layout. ``lexical`` adds the
        BM25 part (an SQLite FTS5 table over analysed tokens, see :mod:`simsearch.store.lexical`)
        that the lexical and hybrid search modes use, analysed by ``analyzer`` (``standard``,
        ``korean`` or ``auto``: Korean when kiwipiepy is installed and the first 1,000 documents
        hold Hangul; see :mod:`simsearch.analysis`). ``tune_queries`` (texts like the ones users
        will ask) tune the ANN search instead of a sample of the stored vectors; they are kept
        with the index, so later rebuilds (add, delete, compact) tune on them again.

        Raises :class:`~simsearch.errors.IndexExistsError` if it exists and ``force`` is False,
        and :class:`~simsearch.errors.InputError` for duplicate ids or an empty input; in every
        failure case the previous index (or none) is left as it was.
        """
        if encoder is None:
            from simsearch.encode.torch_encoder import Encoder

            encoder = Encoder()
        from simsearch.store.bulk import open_sink
        from simsearch.store.index_types import builder

        builder(index_type, target_recall)  # bad types fail before any encoding
        check_choice(analyzer)
        path = locate(name_or_path, index_dir)
        started = time.perf_counter()
        tune_vectors = encode_tune_queries(encoder, tune_queries)  # bad queries fail before documents
        truncated, sample = 0, list[str]()
        with open_sink(path, shards=shards, force=force) as sink:
            for chunk in batches(_as_documents(documents), _CHUNK):
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
        from simsearch.encode.onnx_encoder import prepare

        prepare(encoder)  # export for fast queries now, while the model is loaded anyway
        index = open_path(path)
        index._encoder, index._exported = encoder, True
        index.last_build = BuildStats(count, truncated, time.perf_counter() - started)
        return index

    @classmethod
    def build_from_vectors(
        cls,
        batches: Iterable[tuple[Sequence[Document], np.ndarray]],
        name_or_path: str | os.PathLike[str],
        encoder: Any,
        *,
        index_dir: str | os.PathLike[str] | None = None,
        force: bool = False,
        index_type: str = "auto",
        target_recall: float = 0.95,
        shards: int | None = None,
        tune_queries: Sequence[str] | None = None,
        analyzer: str = "auto",
    ) -> Index:
        """Write a new index from documents whose vectors are already computed: no encoding.

        ``batches`` yields (documents, float32 ``(n, dim)`` unit rows). ``encoder`` is the model
        the vectors came from: it is recorded in the manifest and encodes the queries (it is not
        run on the documents; it encodes ``tune_queries``, as in :meth:`build`; ``analyzer`` as
        there too). Rows that are not
        finite unit vectors of its dimension are refused.
        """
        from simsearch.store.bulk import open_sink
        from simsearch.store.index_types import builder

        builder(index_type, target_recall)  # bad types fail before anything is read
        check_choice(analyzer)
        path = locate(name_or_path, index_dir)
        started = time.perf_counter()
        tune_vectors = encode_tune_queries(encoder, tune_queries)
        sample: list[str] = []
        with open_sink(path, shards=shards, force=force) as sink:
            for docs, vectors in batches:
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
        index = open_path(path)
        index._encoder = encoder  # the model the vectors came from encodes the queries
        index.last_build = BuildStats(count, 0, time.perf_counter() - started)
        return index

    @property
    def encoder(self) -> Encoder:
        """The index's own encoder (same model, pooling and max length), loaded on first use.

        Loading writes nothing: the ONNX export a later process may use is written by
        :meth:`build` and by the first :meth:`search` that ran without it (see docs/library.md).
        """
        if self._encoder is None:
            check_own_model(self._identity())
            self._encoder = load_encoder(self._identity())
            m = self._identity()
            if self._encoder.dim != m.dim:
                raise SimsearchError(
                    f"model {m.model!r} now gives {self._encoder.dim}-dim vectors "
                    f"but the index holds {m.dim}-dim ones; rebuild the index"
                )
        return self._encoder

    # A str is also a Sequence[str]: the first overload wins for it, as intended.
    @overload
    def search(  # type: ignore[overload-overlap]
        self,
        query: str,
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit]: ...
    @overload
    def search(
        self,
        query: Sequence[str],
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]: ...

    def search(
        self,
        query: str | Sequence[str],
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """Best documents: ``list[Hit]`` for a string, one list per query for a list.

        ``mode`` is ``dense`` (cosine), ``lexical`` (BM25) or ``hybrid`` (both, fused; see
        :mod:`simsearch.fusion`); the default is hybrid when the index has a lexical part, else
        dense. ``where`` keeps only documents whose metadata match, before ranking, e.g.
        ``{"lang": "ko", "year": {">=": 2020}}`` (see :mod:`simsearch.store.filters`).
        ``min_score`` drops hits whose cosine is below it (dense and hybrid modes).
        """
        single = isinstance(query, str)
        queries = check_queries(query, k, min_score)
        from simsearch.hybrid import check_mode, search_store

        store = self._store  # one generation for every step, even if a write reopens meanwhile
        mode = check_mode(mode, store.manifest)
        if min_score is not None and mode == "lexical":
            raise QueryError(
                "min_score filters by cosine, which lexical mode does not compute; "
                "drop it or use --mode dense or hybrid"
            )
        ranked = search_store(store, queries, k, mode=mode, where=where, encoder=lambda: self.encoder)
        if mode != "lexical" and not self._exported:
            from simsearch.encode.onnx_encoder import prepare

            self._exported = True
            prepare(self.encoder)  # the documented moment: so the next process takes the fast path
        keep = [
            [f for f in row if min_score is None or (f.cosine is not None and f.cosine >= min_score)]
            for row in ranked
        ]
        found = store.fetch(f.rowid for row in keep for f in row)
        results = [
            [
                Hit(rank, found[f.rowid][0], f.score, found[f.rowid][1], found[f.rowid][2], f.cosine, f.bm25)
                for rank, f in enumerate(row, 1)
            ]
            for row in keep
        ]
        return results[0] if single else results

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        min_score: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """Search with already-encoded unit query vectors (one row per query), by cosine;
        ``where`` filters by metadata before ranking, as in :meth:`search`."""
        from simsearch.hybrid import dense_rows

        store = self._store  # one generation for both steps, even if a write reopens meanwhile
        rows = dense_rows(store, np.asarray(vectors, dtype=np.float32), k, where)
        keep = [[(score, r) for r, score in row if min_score is None or score >= min_score] for row in rows]
        found = store.fetch(r for row in keep for _, r in row)
        return [
            [
                Hit(rank, found[r][0], score, found[r][1], found[r][2], score)
                for rank, (score, r) in enumerate(row, 1)
            ]
            for row in keep
        ]

    def add(
        self,
        documents: Iterable[Document | str],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        device: str = "cpu",
    ) -> AddStats:
        """Upsert ``documents`` by id with the index's own model, as one atomic write.

        Unchanged documents (same text hash and metadata) are not re-encoded; changed texts are
        re-embedded and replaced. Plain strings get their content hash as id. Duplicate ids in
        the input raise :class:`~simsearch.errors.InputError` and nothing is written.
        ``device`` runs the model there (``cuda``: the torch encoder on the GPU, checked before
        anything is read, as in :meth:`build`); ``cpu`` uses :attr:`encoder`.
        """
        from simsearch.store.updates import add_documents

        stats = add_documents(
            self.path,
            documents,
            self._store.manifest,
            self._encoder_on(device),
            batch_size=batch_size,
            progress=progress,
        )
        self._reopen(stats.generation)
        return stats

    def delete(self, ids: Iterable[str]) -> DeleteStats:
        """Delete documents by id, atomically; unknown ids are reported in the stats."""
        from simsearch.store.updates import delete_documents

        stats = delete_documents(self.path, ids, lambda: self.encoder)
        self._reopen(stats.generation)
        return stats

    def compact(self) -> CompactStats:
        """Reclaim the space of deleted and replaced documents (SQLite VACUUM, FAISS rebuilt)."""
        from simsearch.store.updates import compact_index

        stats = compact_index(self.path, lambda: self.encoder)
        self._reopen(stats.generation)
        return stats

    def reindex_lexical(self, analyzer: str | None = None) -> int:
        """(Re)build the lexical part from the stored texts, as one new generation (no encoding);
        adds it to an index built without one. ``analyzer`` (``standard``, ``korean``, ``auto``)
        changes the analyzer; None keeps the index's (``auto`` for an index without a lexical
        part). Returns the new generation."""
        from simsearch.store.updates import reindex_lexical

        generation = reindex_lexical(self.path, analyzer)
        self._reopen(generation)
        return generation

    def verify(self, repair: bool = False) -> VerifyReport:
        """Check manifest, checksums, FAISS/SQLite agreement and the model; ``repair`` rebuilds
        the FAISS file from the stored vectors (no sources needed)."""
        from simsearch.store.verify import verify_index

        report = verify_index(self.path, encoder=self._encoder, repair=repair, load_encoder=load_encoder)
        if report.repaired and report.generation is not None:
            self._reopen(report.generation)
        return report

    def _encoder_on(self, device: str) -> Callable[[], Encoder]:
        """The encoder an add runs: :attr:`encoder` (loaded when first needed) on ``cpu``, else the
        index's model loaded on ``device`` now, so a bad device fails before any input is read."""
        if device == "cpu":
            return lambda: self.encoder
        check_own_model(self._identity())
        encoder = load_encoder(self._identity(), device=device)
        return lambda: encoder

    def _identity(self) -> Manifest:
        """The manifest naming this index's model (a sharded index answers with a shard's)."""
        return self._store.manifest

    def _reopen(self, generation: int) -> None:
        """Follow a write: the old store stays valid for searches already holding it."""
        if generation != self._store.manifest.generation:
            self._store = Store.open(self.path)

    def ids(self) -> list[str]:
        """Every document id, in storage order."""
        return self._store.ids()

    def get(self, ids: Iterable[str]) -> list[Document]:
        """The stored documents of ``ids``, in the order given; ids not in the index are skipped."""
        return [Document(doc_id, text, metadata) for doc_id, text, metadata, _ in self._rows(ids, False)]

    def get_vectors(self, ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The stored vectors of ``ids`` that exist (float32 unit rows), with those ids in order."""
        rows = self._rows(ids, True)
        dim = int(self.manifest["dim"])
        blobs = [r[3] for r in rows if r[3] is not None]  # asked for: every row has its vector
        matrix = from_blobs(blobs, dim) if blobs else np.zeros((0, dim), np.float32)
        return [r[0] for r in rows], matrix

    def _rows(self, ids: Iterable[str], vectors: bool) -> list[Row]:
        wanted = lookup_ids(ids)
        found = self._store.rows_by_id(wanted, vectors)
        return [found[i] for i in wanted if i in found]

    def to_arrow(self, *, vectors: bool = True, metadata: str = "json") -> Any:
        """Every document as a ``pyarrow.Table``: ``id``, ``text``, ``metadata`` (JSON text, or
        one column per key with ``metadata="columns"``) and ``vector`` (fixed-size list of
        float32); the schema metadata records the model. Needs the ``parquet`` extra."""
        from simsearch.export import to_arrow

        return to_arrow(self._export_source(), vectors=vectors, metadata=metadata)

    def export(
        self,
        output: str | os.PathLike[str],
        *,
        format: str = "parquet",
        vectors: bool = False,
        metadata: str = "json",
        force: bool = False,
        stdout: Any = None,
    ) -> int:
        """Write every document to a Parquet or JSON-lines file (``-``: ``stdout``, JSON lines);
        see :meth:`to_arrow`. A file appears complete or not at all. Returns the count written."""
        from simsearch.export import export

        return export(
            self._export_source(),
            output,
            fmt=format,
            vectors=vectors,
            metadata=metadata,
            force=force,
            stdout=stdout,
        )

    def _export_source(self) -> Source:
        from simsearch.export import Source

        return Source.of(self._store)

    def close(self) -> None:
        self._store.close()


def check_encoder(manifest: Manifest, encoder: Encoder) -> None:
    """Refuse an encoder whose model, pooling, dimension or precision differs from the index's."""
    problem = identity_mismatch(manifest.identity, identity_of(encoder))
    if problem:
        raise ModelError(f"index {manifest.name!r} was {problem}")
    check_model_files(manifest, _model_dir(getattr(encoder, "model_path", None)))


def load_encoder(manifest: Manifest, *, device: str = "cpu") -> Encoder:
    """The index's own encoder: the cached ONNX export when there is one (no torch import), else
    the torch encoder from the model directory the manifest records (or its id); on a ``device``
    other than the CPU, always the torch encoder there."""
    from simsearch.encode.onnx_encoder import load

    check_model_files(manifest, _model_dir(manifest.model_path))  # the model files of the build
    fast = None
    if device == "cpu":
        fast = load(
            manifest.model,
            manifest.model_path,
            manifest.pooling,
            manifest.max_length,
            manifest.precision,
            spin=manifest.factory != EXACT_FACTORY,
        )
    if fast is not None:
        return fast
    from simsearch.encode.models import ModelSource
    from simsearch.encode.torch_encoder import Encoder as TorchEncoder

    stored = Path(manifest.model_path)
    if manifest.model_path and stored.is_dir():
        return TorchEncoder(
            ModelSource(manifest.model, stored),
            manifest.pooling,
            max_length=manifest.max_length,
            precision=manifest.precision,
            device=device,
        )
    encoder = TorchEncoder(
        manifest.model,
        manifest.pooling,
        max_length=manifest.max_length,
        precision=manifest.precision,
        device=device,
    )
    check_model_files(manifest, _model_dir(encoder.model_path))  # found again by id: check it
    return encoder


def open_path(path: Path) -> Index:
    """A plain :class:`Index`, or a :class:`~simsearch.sharded.ShardedIndex` for a sharded directory."""
    from simsearch.store.shards import is_sharded

    if is_sharded(path):
        from simsearch.sharded import ShardedIndex

        return ShardedIndex.open_path(path)
    return Index(Store.open(path))


def commit_build(
    sink: Any,
    encoder: Any,
    path: Path,
    truncated: int,
    index_type: str,
    target_recall: float,
    *,
    lexical: Analyzer | None = None,
    tune_vectors: np.ndarray | None = None,
) -> int:
    """Commit a build's sink (local or Ray); returns the document count. Empty input is an error.

    ``lexical`` (None: no lexical part) is the analyzer whose settings are recorded, and the
    writer then builds the BM25 part of each
    index directory (each shard of a sharded one) in the same commit. ``tune_vectors``: see
    :func:`encode_tune_queries`."""
    count = sink.count()
    if count == 0:
        raise InputError("the input holds no documents (only empty lines or records?)")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fields = manifest_fields(encoder, path, now, now, truncated)
    if lexical is not None:
        from simsearch.store.lexical import new_settings

        fields["lexical"] = new_settings(lexical)
    sink.commit(fields, index_type, target_recall, tune_vectors)
    return int(count)


def encode_tune_queries(encoder: Any, queries: Sequence[str] | None) -> np.ndarray | None:
    """The ANN tuning queries as vectors of the index's model (None: tune on stored vectors).

    More than :data:`~simsearch.store.tuning.TUNE_QUERIES` are thinned to that many, drawn
    reproducibly, so a long query log costs a bounded encoding and tuning time.
    """
    texts = tune_query_texts(queries)
    return None if texts is None else np.asarray(encoder.encode(texts), dtype=np.float32)


def tune_query_texts(queries: Sequence[str] | None) -> list[str] | None:
    """The tuning queries :func:`encode_tune_queries` encodes, checked (a build checks them
    before it starts, so a bad query file fails at once)."""
    if queries is None:
        return None
    if isinstance(queries, str):
        raise InputError("tune_queries is a list of query texts, not one string")
    from simsearch.store.tuning import TUNE_QUERIES

    texts = [q.strip() for q in queries if q.strip()]
    if not texts:
        raise InputError("the tuning queries hold no query (only empty lines?); give one query per line")
    if len(texts) > TUNE_QUERIES:
        picks = np.sort(np.random.default_rng(0).choice(len(texts), TUNE_QUERIES, replace=False))
        texts = [texts[i] for i in picks]
    return texts


def check_unit_rows(vectors: Any, dim: int, docs: Sequence[Document]) -> np.ndarray:
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


def _as_documents(items: Iterable[Document | str]) -> Iterator[Document]:
    """Documents as given, plain strings numbered from 1; blank texts are not documents."""
    for number, item in enumerate(items, 1):
        doc = item if isinstance(item, Document) else Document(str(number), str(item), {}, f"item {number}")
        check_document(doc)
        if doc.text.strip():
            yield doc
