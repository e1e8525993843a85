"""The query path: a typed :class:`SearchRequest`, planned once, run on every shard by a
:class:`Searcher` (one store, shards over threads, or shard actors on Ray), ranked once.

The searchers are siblings behind one small interface (:class:`Searcher`); what each shard
computes is :mod:`simsearch.search.shard`, how the shards' answers become one ranking is
:mod:`simsearch.search.ranking`, whatever runs them.
"""

from __future__ import annotations

# Nothing is imported here: `simsearch --help` imports the search modes (search.request) and must
# stay light (no numpy, no FAISS); import SearchRequest, Searcher, LocalSearcher from their modules.
