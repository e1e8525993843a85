"""BM25 over the lexical part, scored in memory: FTS5's ``bm25()`` formula, every match at once.

FTS5 scores a ranked query row by row through its auxiliary-function API, and an OR query over
a sentence's tokens matches a large share of a corpus: at 100k sentences with sentence-long
queries (p50 11k matching rows) ``bm25()`` cost ~240 ms a query on the shared 2-core machine
(benchmarks/README.md). So the stored tokens of one committed generation (the ``lexical``
table, the durable, checksummed and transactional copy) are read once, on the first lexical
query, into postings (term -> rows and term frequencies, numpy arrays), and a query's matching
rows are scored together with the same formula as FTS5::

    idf(t)  = ln((N - n_t + 0.5) / (n_t + 0.5)), at least 1e-6
    bm25(d) = sum over the query's distinct terms t in d of
              idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

(N rows, n_t rows holding t, |d| tokens in d, avgdl the mean; k1 and b from the manifest's
``lexical.ranking``). A row that matches no query term has no score. The postings are cached
per open generation (a write commits a new generation, whose first lexical query reads them
again); ``tests/store/test_bm25.py`` checks the scores against FTS5's own ``bm25()``.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Mapping, Sequence
from weakref import WeakKeyDictionary

import numpy as np

from simsearch.errors import IndexCorruptError

_CACHED: WeakKeyDictionary[object, Postings] = WeakKeyDictionary()
_CACHED_LOCK = threading.Lock()
_END = "\x00"  # ends a row in the joined token text (no analysed token holds it)


@dataclass(frozen=True)
class Statistics:
    """What BM25 needs to know about the whole collection: its row count, total token count and
    each query term's document frequency. One store's are its own; a sharded index sums its
    shards' (:func:`combine`), so every shard scores with the plain index's numbers."""

    rows: int
    tokens: int
    df: Mapping[str, int]
    k1: float = 1.2  # the manifest's ranking parameters (every shard of an index has the same)
    b: float = 0.75

    @property
    def avgdl(self) -> float:
        return self.tokens / self.rows if self.rows else 1.0

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return max(1e-6, math.log((self.rows - df + 0.5) / (df + 0.5)))

    def self_score(self, tokens: Sequence[str]) -> float:
        """The BM25 that a document made of exactly the query's ``tokens`` would score (those
        the collection holds: no document scores on the others): what a document repeating the
        query scores, the lexical side's "full match" (hybrid scores express a document's BM25
        as a share of it, see :mod:`simsearch.search.fusion`). 0 when no token occurs."""
        counts: dict[str, int] = {}
        for token in tokens:
            if self.df.get(token, 0) > 0:
                counts[token] = counts.get(token, 0) + 1
        length = sum(counts.values())
        norm = self.k1 * (1.0 - self.b + self.b * length / max(self.avgdl, 1e-12))
        return sum(self.idf(t) * tf * (self.k1 + 1.0) / (tf + norm) for t, tf in counts.items())


def combine(parts: Sequence[Statistics]) -> Statistics:
    """The statistics of a collection made of ``parts`` (integer sums: exact in any order)."""
    df: dict[str, int] = {}
    for part in parts:
        for term, count in part.df.items():
            df[term] = df.get(term, 0) + count
    k1, b = (parts[0].k1, parts[0].b) if parts else (1.2, 0.75)
    return Statistics(sum(p.rows for p in parts), sum(p.tokens for p in parts), df, k1, b)


class Postings:
    """The postings of one generation's lexical table, and BM25 scoring over them."""

    def __init__(self, texts: Sequence[tuple[int, str]], k1: float = 1.2, b: float = 0.75) -> None:
        """``texts``: (rowid, space-joined tokens) per row, any order."""
        self.k1, self.b = float(k1), float(b)
        rows = sorted(texts)
        self.rowids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
        # one split of all rows at once, rows ended by a mark no analysed token can be (C speed)
        flat = (f" {_END} ".join(t for _, t in rows) + f" {_END}").split() if rows else []
        self.vocab: dict[str, int] = dict(zip(set(flat), range(len(flat))))
        end = self.vocab.pop(_END, -1)  # its id stays unused: an empty postings list
        size = len(self.vocab) + (end >= 0)
        tokens = np.fromiter(map(self.vocab.get, flat, repeat(end)), dtype=np.int64, count=len(flat))
        ends = tokens == end
        row_of = np.cumsum(ends) - ends  # the row each token belongs to
        self.lengths = np.diff(np.flatnonzero(ends), prepend=-1) - 1
        terms, rows_of = tokens[~ends], row_of[~ends]
        width = max(1, len(rows))
        # one entry per (term, row) with its count, grouped by term: the postings lists
        keys, tf = np.unique(terms * width + rows_of, return_counts=True)
        term_of = keys // width
        self.rows = (keys % width).astype(np.int32)
        self.tf = tf.astype(np.float64)
        self.starts = np.searchsorted(term_of, np.arange(size + 1)).astype(np.int64)
        self.own = Statistics(len(rows), int(self.lengths.sum()), {})
        self._weights: tuple[float, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.rowids)

    def statistics(self, terms: Sequence[str]) -> Statistics:
        """This store's row and token counts, and the document frequency of each of ``terms``."""
        df = {
            t: int(self.starts[i + 1] - self.starts[i]) for t in terms if (i := self.vocab.get(t)) is not None
        }
        return Statistics(self.own.rows, self.own.tokens, df, self.k1, self.b)

    def _entry_weights(self, avgdl: float) -> np.ndarray:
        """The query-independent part of each posting's score at this average length (cached:
        one collection's average is the same for every query of a generation)."""
        with self._lock:
            if self._weights is None or self._weights[0] != avgdl:
                norm = self.k1 * (1.0 - self.b + self.b * self.lengths / max(avgdl, 1e-12))
                weights = self.tf * (self.k1 + 1.0) / (self.tf + norm[self.rows])
                self._weights = (avgdl, weights)
            return self._weights[1]

    def match(
        self, tokens: Sequence[str], collection: Statistics | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row ids (ascending) and BM25 scores of every row matching any of ``tokens``, scored
        with ``collection``'s statistics (those of the whole index; None: this store's own)."""
        unique = list(dict.fromkeys(tokens))
        stats = collection if collection is not None else self.statistics(unique)
        terms = [(t, self.vocab[t]) for t in unique if t in self.vocab]
        if not terms or not len(self.rowids):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        weights = self._entry_weights(stats.avgdl)
        rows = np.concatenate([self.rows[self.starts[i] : self.starts[i + 1]] for _, i in terms])
        scores = np.concatenate(
            [weights[self.starts[i] : self.starts[i + 1]] * stats.idf(t) for t, i in terms]
        )
        if len(rows) * 8 >= len(self.rowids):  # dense accumulation is cheapest
            summed = np.bincount(rows, weights=scores, minlength=len(self.rowids))
            hit = np.flatnonzero(summed)
            return self.rowids[hit], summed[hit]
        hit, inverse = np.unique(rows, return_inverse=True)
        return self.rowids[hit], np.bincount(inverse, weights=scores)

    def top(
        self, tokens: Sequence[str], n: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The ``n`` best (rowid, bm25), best first, ties by rowid; ``allowed``: sorted row ids
        a metadata filter keeps (None: all)."""
        return best(*self.match(tokens), n, allowed)


def best(
    rowids: np.ndarray, scores: np.ndarray, n: int, allowed: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """The ``n`` best of :meth:`Postings.match`'s rows, best first, ties by rowid, among
    ``allowed`` (sorted row ids; None: all)."""
    if allowed is not None and len(rowids):
        keep = np.isin(rowids, allowed, assume_unique=True)
        rowids, scores = rowids[keep], scores[keep]
    if len(rowids) > n:
        cut = scores[np.argpartition(-scores, n - 1)[n - 1]]  # the n-th best score
        keep = scores >= cut  # every row tied with the n-th too, then the exact order
        rowids, scores = rowids[keep], scores[keep]
    order = np.lexsort((rowids, -scores))[:n]
    return [(int(rowids[i]), float(scores[i])) for i in order]


def lookup(rowids: np.ndarray, scores: np.ndarray, wanted: Sequence[int]) -> dict[int, float]:
    """The scores among :meth:`Postings.match`'s rows of the ``wanted`` ones that matched."""
    if not len(rowids) or not len(wanted):
        return {}
    ask = np.unique(np.asarray(wanted, dtype=np.int64))
    where = np.minimum(np.searchsorted(rowids, ask), len(rowids) - 1)
    found = rowids[where] == ask
    return dict(zip(ask[found].tolist(), scores[where[found]].tolist()))


def read(db: sqlite3.Connection, table: str, ranking: Mapping[str, Any]) -> Postings:
    """The postings of ``table`` in ``db`` with the manifest's ranking parameters."""
    try:
        texts = db.execute(f"SELECT rowid, tokens FROM {table}").fetchall()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(
            f"damaged SQLite file: lexical index unreadable ({exc}); run "
            "`simsearch verify --repair` or rebuild the index"
        ) from None
    return Postings(texts, float(ranking.get("k1", 1.2)), float(ranking.get("b", 0.75)))


def postings(owner: object, db: sqlite3.Connection, table: str, ranking: Mapping[str, Any]) -> Postings:
    """The (cached) postings of the generation ``owner`` holds open through ``db``."""
    with _CACHED_LOCK:
        found = _CACHED.get(owner)
        if found is None:
            found = _CACHED[owner] = read(db, table, ranking)
        return found
