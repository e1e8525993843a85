"""The manifest's count of cut documents: how many STORED texts the encoder cut at its max length,
kept right by every add, delete and compact (:class:`StoredCuts`), capped at the document count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from simsearch.errors import SimsearchError
from simsearch.store import sql
from simsearch.store.manifest import Manifest

if TYPE_CHECKING:
    from simsearch.encode import Encoder

_CHUNK = 2048  # stored texts read and tokenized again per step: memory stays flat


class StoredCuts:
    """Keeps the manifest's ``truncated`` the number of STORED documents that were cut.

    A build counts exactly. An add adds the new texts the encoder cut and subtracts the replaced
    ones that were cut; a delete subtracts the deleted ones that were cut. Which stored texts were
    cut is found by tokenizing them again (no model run), and only while the count is above
    zero, so an index without long documents never loads a model for it. Indexes written before
    this count was kept (every add added, nothing subtracted) may count too many: the count is
    capped at the number of documents, and ``compact`` counts the stored texts afresh.
    Without an encoder (or when the index's model cannot be loaded) the count is carried
    forward, capped.
    """

    def __init__(self, previous: Manifest, encoder: Callable[[], Encoder] | None) -> None:
        self.previous = previous
        self._encoder = encoder
        self.gone = 0
        self._usable = previous.truncated > 0 and encoder is not None

    def _flags(self, texts: list[str]) -> list[bool] | None:
        if not self._usable or not texts or self._encoder is None:
            return None
        try:
            return cut_flags(self._encoder(), texts)
        except SimsearchError:  # model files gone: deleting must still work
            self._usable = False
            return None

    def leaving(self, db: Any, rowids: list[int]) -> None:
        """Count the cut ones among stored documents about to be replaced or deleted."""
        if not self._usable or not rowids:
            return
        for chunk in sql.batches(rowids, _CHUNK):
            texts = [
                t for (t,) in sql.select_in(db, "SELECT text FROM documents WHERE rowid IN ({marks})", chunk)
            ]
            flags = self._flags(texts)
            if flags is not None:
                self.gone += sum(flags)

    def total(self, db: Any, new: int) -> int:
        """The count after the write: previous - cut documents gone + ``new`` cut ones, capped."""
        count = int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
        return capped(self.previous.truncated - self.gone + new, count)

    def recount(self, db: Any) -> int | None:
        """Cut documents among all stored ones, or None where they cannot be counted (unchanged)."""
        if not self._usable:
            return None
        total = 0
        for chunk in sql.batches(db.execute("SELECT text FROM documents ORDER BY rowid"), _CHUNK):
            flags = self._flags([t for (t,) in chunk])
            if flags is None:
                return None
            total += sum(flags)
        return total


def capped(truncated: int, count: int) -> int:
    """A count of cut documents kept between 0 and the number of documents."""
    return max(0, min(count, truncated))


def cut_flags(encoder: Encoder, texts: list[str]) -> list[bool]:
    """Which of ``texts`` the encoder cuts at its max length: by tokenizing where the encoder can
    tell (torch and ONNX encoders), else by encoding each text alone."""
    flags = getattr(encoder, "cut_flags", None)
    if callable(flags):
        return [bool(f) for f in flags(texts)]
    return [encoder.encode_counting([text])[1] > 0 for text in texts]
