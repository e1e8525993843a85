"""Planning a search: the query texts -> a :class:`~simsearch.search.request.SearchRequest`.

This is the one place a query meets the model: its vectors are encoded once, here, before any
fan-out to shards; the hybrid weight of each query (how much of it the model's vocabulary
covers, :mod:`simsearch.search.fusion`) is measured here; the lexical tokens are analysed with the
index's analyzer; the ``where`` is compiled once against the whole index's fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from simsearch.search.fusion import dense_weight
from simsearch.search.request import SearchRequest
from simsearch.store import lexical
from simsearch.search.where import Condition, compile_where
from simsearch.store.manifest import Manifest

NOTHING: Condition = ("0", ())  # the filter of an index without documents: keeps none

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def plan(
    queries: Sequence[str],
    k: int,
    *,
    mode: str,
    identity: Manifest,
    encoder: Callable[[], Encoder],
    field_types: Callable[[], dict[str, set[str]]],
    where: Mapping[str, Any] | None = None,
    min_score: float | None = None,
) -> SearchRequest:
    """The request for ``queries`` in ``mode`` (already checked, :func:`simsearch.search.modes.check_mode`)."""
    condition = compile_filter(where, field_types)
    vectors = weights = tokens = None
    if mode != "lexical":
        model = encoder()
        vectors = np.ascontiguousarray(model.encode(list(queries)), dtype=np.float32)
        if mode == "hybrid":
            from simsearch.encode.coverage import coverage

            weights = tuple(dense_weight(c) for c in coverage(model, queries))
    if mode != "dense":
        analyzer = lexical.analyzer_of(identity)
        assert analyzer is not None  # check_mode refused modes the index cannot answer
        tokens = tuple(tuple(analyzer(q)) for q in queries)
    return SearchRequest(tuple(queries), k, mode, vectors, tokens, weights, condition, min_score)


def compile_filter(
    where: Mapping[str, Any] | None, field_types: Callable[[], dict[str, set[str]]]
) -> Condition | None:
    """``where`` compiled once against the whole index's fields (None: no filter). An index that
    holds no document has no fields: there every filter keeps nothing (it is no error)."""
    if not where:
        return None
    types = field_types()
    return compile_where(where, types) if types else NOTHING
