"""The query methods of an index, whatever its topology: each query is planned once here (the
index's model encodes it, :mod:`simsearch.index.plan`) and the typed request is run by the index's
:class:`~simsearch.search.searcher.Searcher`. :class:`~simsearch.index.api.Index` inherits these."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Mapping, Sequence, overload

import numpy as np

from simsearch.index.plan import compile_filter, plan
from simsearch.search.hits import Hit
from simsearch.search.modes import check_mode
from simsearch.search.request import SearchRequest
from simsearch.search.searcher import Searcher
from simsearch.store.manifest import Manifest
from simsearch.validate import check_queries

if TYPE_CHECKING:
    from simsearch.encode import Encoder


class SearchAccess:
    """The query methods of :class:`~simsearch.index.api.Index`."""

    _searcher: Searcher
    _exported: bool  # whether the ONNX export of the encoder was prepared

    @property
    @abstractmethod
    def encoder(self) -> Encoder: ...

    @abstractmethod
    def _identity(self) -> Manifest: ...

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
        ``{"lang": "ko", "year": {">=": 2020}}`` (see :mod:`simsearch.search.where`).
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
            from simsearch.encode.onnx_export import prepare

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
