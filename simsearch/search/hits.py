"""One shape for results: :class:`Hit`, and its JSON form shared by ``query --json`` and the HTTP API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from simsearch.validate import json_ready

log = logging.getLogger("simsearch")


@dataclass(frozen=True)
class Hit:
    """One search result, ``rank`` starting at 1. ``score`` follows the ranking: the cosine in
    dense mode, BM25 in lexical mode, and in hybrid mode a relevance from 0 to 1, comparable
    across queries (the blend of the cosine and the BM25 share of a full match; 1: a document
    that repeats the query; see :mod:`simsearch.search.fusion`); ``cosine`` and ``bm25`` are
    each side's own score where defined (None otherwise)."""

    rank: int
    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    cosine: float | None = None
    bm25: float | None = None

    def to_dict(self, query: str) -> dict[str, Any]:
        """The hit as programs see it: ``query --json`` lines and the HTTP API share this shape.

        Always valid JSON: a NaN or Infinity stored by an older version (in metadata, or a score
        from a damaged vector) becomes null, with a warning on the log (stderr for the CLI).
        """
        score, bad_score = json_ready(round(self.score, 6))
        metadata, bad_metadata = json_ready(self.metadata)
        cosine, bad_cosine = json_ready(None if self.cosine is None else round(self.cosine, 6))
        bm25, _ = json_ready(None if self.bm25 is None else round(self.bm25, 6))
        if bad_score or bad_metadata or bad_cosine:
            log.warning(
                "warning: document %r has %s; written as null (re-add the document with finite "
                "values, and run `simsearch verify` on the index)",
                self.id,
                "NaN or Infinity in its metadata" if bad_metadata else "a non-finite score",
            )
        return {
            "query": query,
            "rank": self.rank,
            "id": self.id,
            "score": score,
            "text": self.text,
            "metadata": metadata,
            "cosine": cosine,
            "bm25": bm25,
        }
