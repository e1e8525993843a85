"""The write methods of an index, whatever its topology: each is one atomic write through
:mod:`simsearch.store.write` (which picks the plain or sharded writer), after which the index
follows the new generation. :class:`~simsearch.index.api.Index` inherits these."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from simsearch.index.model import load_encoder
from simsearch.readers import Document
from simsearch.store import write as writes
from simsearch.store.manifest import Manifest
from simsearch.store.manifest_fields import check_own_model

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.store.verify import VerifyReport
    from simsearch.store.write.updates import AddStats, CompactStats, DeleteStats


class WriteAccess:
    """The write methods of :class:`~simsearch.index.api.Index`."""

    _encoder: Encoder | None

    @property
    @abstractmethod
    def path(self) -> Path: ...

    @property
    @abstractmethod
    def encoder(self) -> Encoder: ...

    @abstractmethod
    def _identity(self) -> Manifest: ...

    @abstractmethod
    def _follow(self, generation: int) -> None: ...

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
        build (:func:`simsearch.store.write.duplicates.refuse_copies`).
        """
        encoder = self._encoder_on(device)
        if not allow_duplicates:
            from simsearch.store.write.duplicates import refuse_copies
            from simsearch.store.write.updates import documents_of

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

    def reindex_lexical(self, analyzer: str | None = None) -> int:
        """(Re)build the lexical part from the stored texts, as one new generation (no encoding);
        adds it to an index built without one. ``analyzer`` (``standard``, ``korean``, ``auto``)
        changes the analyzer; None keeps the index's (``auto`` for an index without a lexical
        part). Returns the new generation."""
        generation = writes.reindex_lexical(self.path, analyzer)
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

    def _encoder_on(self, device: str) -> Callable[[], Encoder]:
        """The encoder an add runs: :attr:`encoder` (loaded when first needed) on ``cpu``, else the
        index's model loaded on ``device`` now, so a bad device fails before any input is read."""
        if device == "cpu":
            return lambda: self.encoder
        check_own_model(self._identity())
        encoder = load_encoder(self._identity(), device=device)
        return lambda: encoder
