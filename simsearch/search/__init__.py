"""The query path: a typed :class:`SearchRequest`, planned once, run on every shard by a
:class:`Searcher` (one store, shards over threads, or shard actors on Ray), ranked once.

The searchers are siblings behind one small interface (:class:`Searcher`); what each shard
computes is :mod:`simsearch.search.shard`, how the shards' answers become one ranking is
:mod:`simsearch.search.ranking`, whatever runs them.
"""

from __future__ import annotations

from simsearch.search.request import SearchRequest
from simsearch.search.searcher import LocalSearcher, Searcher

__all__ = ["LocalSearcher", "SearchRequest", "Searcher"]
