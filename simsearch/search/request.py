"""A query as plain typed data: what every searcher receives, whatever the topology.

A request carries everything the shards need and nothing that needs a model: the queries'
vectors (encoded once, by the caller, before any fan-out), each query's dense weight for
hybrid fusion, its analysed lexical tokens, and the metadata filter compiled once against the
whole index's fields. It is plain data, so it travels to Ray actors as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

if TYPE_CHECKING:
    from simsearch.search.where import Condition

MODES = ("dense", "lexical", "hybrid")


@dataclass(frozen=True, eq=False)
class SearchRequest:
    """One search of ``len(queries)`` queries.

    ``vectors``: float32 ``(n, dim)`` unit rows (None in lexical mode); ``tokens``: each query's
    analysed terms (None in dense mode); ``weights``: each query's dense weight in hybrid mode;
    ``condition``: the compiled ``where`` (:func:`simsearch.search.where.compile_where`; None:
    every document); ``min_score``: drop hits whose cosine is below it.
    """

    queries: tuple[str, ...]
    k: int
    mode: str
    vectors: np.ndarray | None = None
    tokens: tuple[tuple[str, ...], ...] | None = None
    weights: tuple[float, ...] | None = None
    condition: Condition | None = None
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown search mode {self.mode!r}")
        if self.mode != "lexical" and (self.vectors is None or len(self.vectors) != len(self.queries)):
            raise ValueError("dense and hybrid requests carry one query vector per query")
        if self.mode != "dense" and (self.tokens is None or len(self.tokens) != len(self.queries)):
            raise ValueError("lexical and hybrid requests carry the analysed tokens of every query")
        if self.mode == "hybrid" and (self.weights is None or len(self.weights) != len(self.queries)):
            raise ValueError("hybrid requests carry one dense weight per query")

    @property
    def terms(self) -> list[str]:
        """Every distinct lexical term of the request (for the collection statistics)."""
        return list(dict.fromkeys(t for query in self.tokens or () for t in query))
