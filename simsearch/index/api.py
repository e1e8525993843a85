"""Index: the library face, one class for every topology (plain, sharded, on Ray).

The topology is plugged in, not inherited: an :class:`Index` plans each query once (its model
encodes it, :mod:`simsearch.index.plan`) and hands a typed request to its
:class:`~simsearch.search.searcher.Searcher` (one store, shards over threads, or shard actors on
Ray, :mod:`simsearch.scale.searcher`); every write goes through :mod:`simsearch.store.writes`,
which picks the layout's writer, and the searcher then follows the new generation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, overload

import numpy as np

from simsearch.errors import IndexNotFoundError, SimsearchError
from simsearch.hits import Hit
from simsearch.index import build as building
from simsearch.index.model import check_encoder, load_encoder
from simsearch.index.plan import compile_filter, plan
from simsearch.manifest_fields import check_own_model, derived_id_rule
from simsearch.readers import Document
from simsearch.search.modes import check_mode
from simsearch.search.request import SearchRequest
from simsearch.search.searcher import LocalSearcher, Searcher
from simsearch.store import writes
from simsearch.store.commit import BuildStats
from simsearch.store.faiss_file import from_blobs
from simsearch.store.home import locate
from simsearch.store.manifest import Manifest
from simsearch.store.reader import Row, Store
from simsearch.store.shardset import ShardSet
from simsearch.validate import check_queries, lookup_ids

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.export import Source
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport


class Index:
    """A searchable index directory. Create with :meth:`build`, reopen with :meth:`open`.

    >>> index = Index.build(["first doc", "second doc"], "demo")
    >>> index.search("a query", k=1)[0].text
    """

    def __init__(self, path: Path, searcher: Searcher, shards: ShardSet | None = None) -> None:
        """Use :meth:`open` or :meth:`build`. ``shards``: the generation opened in this process
        (a local searcher's own; None for a Ray searcher, opened here only when needed)."""
        self._path = path
        self._searcher = searcher
        self._local = shards
        self._described: ShardSet | _Described = shards if shards is not None else _Described.read(path)
        self._encoder: Encoder | None = None
        self._exported = False  # whether the ONNX export of the encoder was prepared
        self.last_build: BuildStats | None = None

    @classmethod
    def open(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        index_dir: str | os.PathLike[str] | None = None,
        encoder: Encoder | None = None,
        ray: str | None = None,
        replicas: int = 1,
    ) -> Index:
        """Open an existing index by name (under the index home) or path; validates its files.

        ``encoder`` may be passed to share a loaded model; it must be the index's own model and
        pooling (a different one would give vectors from another space). ``ray`` searches on a
        Ray cluster instead, shard actors answering each query: ``"auto"`` (the running
        cluster), an address, or ``"local"`` (start one); needs ``simsearch[ray]``.
        """
        path = locate(name_or_path, index_dir)
        if not os.path.exists(path):  # (False, not OSError, for a name too long for the disk)
            raise IndexNotFoundError(
                f"index {os.fspath(name_or_path)!r} not found in {path.parent}; "
                "run `simsearch list` to see the indexes there"
            )
        if ray is not None:
            from simsearch.scale.searcher import RaySearcher

            index = cls(path, RaySearcher.open(path, ray, replicas=replicas))
        else:
            index = open_path(path)
        if encoder is not None:
            try:
                check_encoder(index._identity(), encoder, name=path.name)
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
    ) -> Index:
        """Encode ``documents`` (Documents or plain strings) and write a new index atomically.

        ``index_type`` is ``auto`` (exact while small, then a tuned ANN index), ``flat``, ``hnsw``,
        ``ivf``, ``ivfpq`` or a FAISS factory string; ANN search parameters are tuned on the stored
        vectors to reach ``target_recall`` (recall@10 against exact search). ``shards=N`` writes N
        shards routed by id hash (each of that index type; searched and updated through the same
        methods); ``None`` writes the plain single-directory layout. ``lexical`` adds the BM25
        part (see :mod:`simsearch.store.lexical`) that the lexical and hybrid search modes use.
        ``tune_queries`` (texts like the ones users will ask) tune the ANN search instead of a
        sample of the stored vectors; they are kept with the index, so later rebuilds (add,
        delete, compact) tune on them again.

        Raises :class:`~simsearch.errors.IndexExistsError` if it exists and ``force`` is False,
        and :class:`~simsearch.errors.InputError` for duplicate ids or an empty input; in every
        failure case the previous index (or none) is left as it was.
        """
        if encoder is None:
            from simsearch.encode.torch_encoder import Encoder as TorchEncoder

            encoder = TorchEncoder()
        path = locate(name_or_path, index_dir)
        stats = building.write_encoded(
            documents,
            path,
            encoder,
            force=force,
            progress=progress,
            index_type=index_type,
            target_recall=target_recall,
            shards=shards,
            lexical=lexical,
            tune_queries=tune_queries,
        )
        from simsearch.encode.onnx_encoder import prepare

        prepare(encoder)  # export for fast queries now, while the model is loaded anyway
        return opened(path, encoder, stats, exported=True)

    @classmethod
    def build_from_vectors(
        cls,
        batches: Iterable[tuple[Sequence[Document], np.ndarray]],
        name_or_path: str | os.PathLike[str],
        encoder: Encoder,
        *,
        index_dir: str | os.PathLike[str] | None = None,
        force: bool = False,
        index_type: str = "auto",
        target_recall: float = 0.95,
        shards: int | None = None,
        tune_queries: Sequence[str] | None = None,
    ) -> Index:
        """Write a new index from documents whose vectors are already computed: no encoding.

        ``batches`` yields (documents, float32 ``(n, dim)`` unit rows). ``encoder`` is the model
        the vectors came from: it is recorded in the manifest and encodes the queries (it is not
        run on the documents; it encodes ``tune_queries``, as in :meth:`build`). Rows that are not
        finite unit vectors of its dimension are refused.
        """
        path = locate(name_or_path, index_dir)
        stats = building.write_vectors(
            batches,
            path,
            encoder,
            force=force,
            index_type=index_type,
            target_recall=target_recall,
            shards=shards,
            tune_queries=tune_queries,
        )
        return opened(path, encoder, stats, exported=False)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as a plain dict (every key, a copy; a sharded index's top manifest)."""
        return self._described.manifest()

    @property
    def shards(self) -> int:
        """How many shards the index has (1 for a plain index)."""
        return self._described.shard_count

    @property
    def searcher(self) -> Searcher:
        """What runs this index's searches (local stores, or shard actors on Ray)."""
        return self._searcher

    def __len__(self) -> int:
        return self._described.count

    @property
    def derived_ids(self) -> str:
        """How sources added to this index derive ids from file paths (``ReadOptions.derived_ids``)."""
        return derived_id_rule(self._identity())

    def __repr__(self) -> str:
        m = self._identity()
        where = f", ray={self._searcher}" if not isinstance(self._searcher, LocalSearcher) else ""
        shards = f", shards={self.shards}" if "shards" in self.manifest else ""
        return f"Index({str(self.path)!r}, count={len(self)}{shards}, model={m.model!r}, pooling={m.pooling!r}{where})"

    @property
    def encoder(self) -> Encoder:
        """The index's own encoder (same model, pooling and max length), loaded on first use.

        Loading writes nothing: the ONNX export a later process may use is written by
        :meth:`build` and by the first :meth:`search` that ran without it (see docs/library.md).
        """
        if self._encoder is None:
            m = self._identity()
            check_own_model(m)
            encoder = load_encoder(m)
            if encoder.dim != m.dim:
                raise SimsearchError(
                    f"model {m.model!r} now gives {encoder.dim}-dim vectors "
                    f"but the index holds {m.dim}-dim ones; rebuild the index"
                )
            self._encoder = encoder
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
        :mod:`simsearch.search.fusion`); the default is hybrid when the index has a lexical part, else
        dense. ``where`` keeps only documents whose metadata match, before ranking, e.g.
        ``{"lang": "ko", "year": {">=": 2020}}`` (see :mod:`simsearch.store.filters`).
        ``min_score`` drops hits whose cosine is below it (dense and hybrid modes). The answer
        is the same whatever the topology: ties are broken by document id.
        """
        single = isinstance(query, str)
        queries = check_queries(query, k, min_score)
        identity = self._identity()
        mode = check_mode(mode, identity, min_score)
        request = plan(
            queries,
            k,
            mode=mode,
            identity=identity,
            encoder=lambda: self.encoder,
            field_types=self._searcher.field_types,
            where=where,
            min_score=min_score,
        )
        results = self._searcher.search(request)
        if mode != "lexical" and not self._exported:
            from simsearch.encode.onnx_encoder import prepare

            self._exported = True
            prepare(self.encoder)  # the documented moment: so the next process takes the fast path
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
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        check_queries(["vector"] * max(1, len(matrix)), k, min_score)
        condition = compile_filter(where, self._searcher.field_types)
        request = SearchRequest(
            ("",) * len(matrix), k, "dense", matrix, condition=condition, min_score=min_score
        )
        return self._searcher.search(request)

    def add(
        self,
        documents: Iterable[Document | str],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        device: str = "cpu",
        allow_duplicates: bool = True,
    ) -> AddStats:
        """Upsert ``documents`` by id with the index's own model, as one atomic write.

        Unchanged documents (same text hash and metadata) are not re-encoded; changed texts are
        re-embedded and replaced. Plain strings get their content hash as id. Duplicate ids in
        the input raise :class:`~simsearch.errors.InputError` and nothing is written.
        ``device`` runs the model there (``cuda``: the torch encoder on the GPU, checked before
        anything is read, as in :meth:`build`); ``cpu`` uses :attr:`encoder`.
        ``allow_duplicates=False`` stops the add (:class:`~simsearch.errors.InputError`, nothing
        written) when at least half of its first 64 documents have new ids but texts the index
        already stores under other ids: a copied source, or ids derived differently than at the
        build (:func:`simsearch.store.duplicates.refuse_copies`).
        """
        encoder = self._encoder_on(device)
        if not allow_duplicates:
            from simsearch.store.duplicates import refuse_copies
            from simsearch.store.updates import documents_of

            documents = refuse_copies(self.path, documents_of(documents))
        stats = writes.add(
            self.path, documents, self._identity(), encoder, batch_size=batch_size, progress=progress
        )
        self._follow(stats.generation)
        return stats

    def delete(self, ids: Iterable[str]) -> DeleteStats:
        """Delete documents by id, atomically; unknown ids are reported in the stats."""
        stats = writes.delete(self.path, ids, lambda: self.encoder)
        self._follow(stats.generation)
        return stats

    def compact(self) -> CompactStats:
        """Reclaim the space of deleted and replaced documents (SQLite VACUUM, FAISS rebuilt)."""
        stats = writes.compact(self.path, lambda: self.encoder)
        self._follow(stats.generation)
        return stats

    def reindex_lexical(self) -> int:
        """(Re)build the lexical part from the stored texts, as one new generation (no encoding);
        adds it to an index built without one. Returns the new generation."""
        generation = writes.reindex_lexical(self.path)
        self._follow(generation)
        return generation

    def verify(self, repair: bool = False) -> VerifyReport:
        """Check manifest, checksums, FAISS/SQLite agreement and the model; ``repair`` rebuilds
        the FAISS file from the stored vectors (no sources needed)."""
        from simsearch.store.verify import verify_index

        report = verify_index(self.path, encoder=self._encoder, repair=repair, load_encoder=load_encoder)
        if report.repaired and report.generation is not None:
            self._follow(report.generation)
        return report

    def reload(self) -> None:
        """Follow the newest generation committed on disk (by this process or another); searches
        already running finish on the generation they hold. Cheap when nothing changed."""
        self._follow(_Described.read(self.path).generation)

    def local_stores(self) -> list[Store]:
        """The current generation's stores opened in this process, in shard order (a Ray index
        opens them on first need): for tools that read the files themselves (``eval ann``)."""
        return list(self._shard_set().stores)

    def ids(self) -> list[str]:
        """Every document id, in storage order (shard by shard)."""
        return self._shard_set().ids()

    def get(self, ids: Iterable[str]) -> list[Document]:
        """The stored documents of ``ids``, in the order given; ids not in the index are skipped."""
        return [Document(doc_id, text, metadata) for doc_id, text, metadata, _ in self._rows(ids, False)]

    def get_vectors(self, ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The stored vectors of ``ids`` that exist (float32 unit rows), with those ids in order."""
        rows = self._rows(ids, True)
        dim = self._identity().dim
        blobs = [r[3] for r in rows if r[3] is not None]  # asked for: every row has its vector
        matrix = from_blobs(blobs, dim) if blobs else np.zeros((0, dim), np.float32)
        return [r[0] for r in rows], matrix

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

    def close(self) -> None:
        self._searcher.close()
        if self._local is not None and not isinstance(self._searcher, LocalSearcher):
            self._local.close()

    def _identity(self) -> Manifest:
        """The manifest naming this index's model (a sharded index answers with a shard's)."""
        return self._described.identity

    def _encoder_on(self, device: str) -> Callable[[], Encoder]:
        """The encoder an add runs: :attr:`encoder` (loaded when first needed) on ``cpu``, else the
        index's model loaded on ``device`` now, so a bad device fails before any input is read."""
        if device == "cpu":
            return lambda: self.encoder
        check_own_model(self._identity())
        encoder = load_encoder(self._identity(), device=device)
        return lambda: encoder

    def _follow(self, generation: int) -> None:
        """Follow a write: searches already running finish on the generation they hold."""
        if generation == self._described.generation:
            return
        self._searcher.reload()
        if isinstance(self._searcher, LocalSearcher):
            self._local = self._described = self._searcher.shards
        else:
            self._local, self._described = None, _Described.read(self.path)

    def _shard_set(self) -> ShardSet:
        """The current generation opened in this process (a Ray index opens it on first need)."""
        if isinstance(self._searcher, LocalSearcher):
            return self._searcher.shards
        if self._local is None or self._local.generation != self._described.generation:
            self._local = ShardSet.open(self.path)
        return self._local

    def _rows(self, ids: Iterable[str], vectors: bool) -> list[Row]:
        wanted = lookup_ids(ids)
        found = self._shard_set().rows_by_id(wanted, vectors)
        return [found[i] for i in wanted if i in found]

    def _export_source(self) -> Source:
        """Every shard, in shard order, described as one index (its name and total count)."""
        from simsearch.export import Source

        shards = self._shard_set()  # one generation, even if a write reopens meanwhile
        return Source(list(shards.stores), shards.identity.replace(count=shards.count))


class _Described:
    """What an index says about itself, read from its manifests without opening its data
    (a Ray index's searcher holds the data; the driver reads only this)."""

    def __init__(self, top: Mapping[str, Any], identity: Manifest, shard_count: int) -> None:
        self._top = dict(top)
        self.identity = identity
        self.shard_count = shard_count

    @classmethod
    def read(cls, path: Path) -> _Described:
        from simsearch.store.manifest import read_manifest
        from simsearch.store.shards import check_part, is_sharded, read_top_manifest

        if not is_sharded(path):
            manifest = read_manifest(path)
            return cls(manifest.to_dict(), manifest, 1)
        top = read_top_manifest(path)
        parts = top["shards"]["parts"]
        check_part(path, parts[0])
        identity = read_manifest(path / parts[0]["dir"]).replace(name=str(top.get("name", path.name)))
        return cls(top, identity, len(parts))

    def manifest(self) -> dict[str, Any]:
        return dict(self._top)

    @property
    def count(self) -> int:
        return int(self._top["count"])

    @property
    def generation(self) -> int:
        return int(self._top["generation"])


def open_path(path: Path) -> Index:
    """The index at ``path`` (plain or sharded), searched in this process."""
    shards = ShardSet.open(path)
    return Index(path, LocalSearcher(shards), shards)


def opened(path: Path, encoder: Encoder, stats: BuildStats, *, exported: bool) -> Index:
    """The index a build just wrote, holding the build's encoder and stats."""
    index = open_path(path)
    index._encoder, index._exported = encoder, exported
    index.last_build = stats
    return index
