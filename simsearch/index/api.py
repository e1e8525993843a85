"""Index: the library face, one class for every topology (plain, sharded, on Ray).

The topology is plugged in, not inherited: an :class:`Index` plans each query once (its model
encodes it, :mod:`simsearch.index.plan`; the query methods live in
:mod:`simsearch.index.searching`) and hands a typed request to its
:class:`~simsearch.search.searcher.Searcher` (one store, shards over threads, or shard actors on
Ray, :mod:`simsearch.scale.searcher`); every write goes through :mod:`simsearch.store.write`,
which picks the layout's writer, and the searcher then follows the new generation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from simsearch.errors import IndexNotFoundError, SimsearchError
from simsearch.index import build as building
from simsearch.index.description import Description
from simsearch.index.documents import DocumentAccess
from simsearch.index.writing import WriteAccess
from simsearch.index.model import check_encoder, load_encoder
from simsearch.index.searching import SearchAccess
from simsearch.store.manifest_fields import check_own_model, derived_id_rule
from simsearch.readers import Document
from simsearch.search.searcher import LocalSearcher, Searcher
from simsearch.store.write.commit import BuildStats
from simsearch.store.home import locate
from simsearch.store.manifest import Manifest
from simsearch.store.shardset import ShardSet

if TYPE_CHECKING:
    from simsearch.encode import Encoder


class Index(SearchAccess, DocumentAccess, WriteAccess):
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
        self._described: ShardSet | Description = shards if shards is not None else Description.read(path)
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
        analyzer: str = "auto",
    ) -> Index:
        """Encode ``documents`` (Documents or plain strings) and write a new index atomically.

        ``index_type`` is ``auto`` (exact while small, then a tuned ANN index), ``flat``, ``hnsw``,
        ``ivf``, ``ivfpq`` or a FAISS factory string; ANN search parameters are tuned on the stored
        vectors to reach ``target_recall`` (recall@10 against exact search). ``shards=N`` writes N
        shards routed by id hash (each of that index type; searched and updated through the same
        methods); ``None`` writes the plain single-directory layout. ``lexical`` adds the BM25
        part (see :mod:`simsearch.store.lexical`) that the lexical and hybrid search modes use,
        analysed by ``analyzer`` (``standard``, ``korean`` or ``auto``: Korean when kiwipiepy is
        installed and the first 1,000 documents hold Hangul).
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
            analyzer=analyzer,
        )
        from simsearch.encode.onnx_export import prepare

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
        analyzer: str = "auto",
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
            analyzer=analyzer,
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

    def reload(self) -> None:
        """Follow the newest generation committed on disk (by this process or another); searches
        already running finish on the generation they hold. Cheap when nothing changed."""
        self._follow(Description.read(self.path).generation)

    def close(self) -> None:
        self._searcher.close()
        if self._local is not None and not isinstance(self._searcher, LocalSearcher):
            self._local.close()

    def _identity(self) -> Manifest:
        """The manifest naming this index's model (a sharded index answers with a shard's)."""
        return self._described.identity

    def _follow(self, generation: int) -> None:
        """Follow a write: searches already running finish on the generation they hold."""
        if generation == self._described.generation:
            return
        self._searcher.reload()
        if isinstance(self._searcher, LocalSearcher):
            self._local = self._described = self._searcher.shards
        else:
            self._local, self._described = None, Description.read(self.path)

    def _shard_set(self) -> ShardSet:
        """The current generation opened in this process (a Ray index opens it on first need)."""
        if isinstance(self._searcher, LocalSearcher):
            return self._searcher.shards
        if self._local is None or self._local.generation != self._described.generation:
            self._local = ShardSet.open(self.path)
        return self._local


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
