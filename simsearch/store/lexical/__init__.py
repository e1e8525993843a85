"""The lexical side of an index: an SQLite FTS5 table inside the documents file.

The table ``lexical(tokens)`` holds each document's analysed tokens (see
:mod:`simsearch.store.lexical.analyzer`) joined by spaces, under the same rowid as its ``documents`` row. It
lives in the same SQLite file, so it is staged, checksummed and committed with the documents
under the generation scheme of :mod:`simsearch.store.write.writer`: the two can never disagree in a
committed generation. FTS5's ``ascii`` tokenizer only splits the stored tokens at the spaces
(every non-ASCII character is a token character and ASCII tokens are already lower case).
Ranking is FTS5's ``bm25()`` formula (k1 1.2, b 0.75), computed over postings held in memory
(:mod:`simsearch.store.lexical.bm25`: FTS5 scores every match row by row, far too slowly for sentence
queries at 100k documents); scores are reported positive, higher better.

The manifest records the part under one key, ``lexical``; read it with :func:`lexical_settings`.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from simsearch.store import sql
from simsearch.store.lexical.analyzer import SAMPLE, Analyzer, check_choice, check_settings, choose, kind
from simsearch.errors import IndexCorruptError

if TYPE_CHECKING:
    from simsearch.store.lexical import bm25
    from simsearch.store.generation import Store

TABLE = "lexical"
ENGINE = "sqlite-fts5"
RANKING = {"function": "bm25", "k1": 1.2, "b": 0.75}
K1_MAX = 10.0  # beyond it term frequency never saturates: a typo, not a setting
_CREATE = f"CREATE VIRTUAL TABLE {TABLE} USING fts5(tokens, tokenize='ascii')"
_CHUNK = 2048


def lexical_settings(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``lexical`` section, or None for an index without a lexical part.

    Every value a search or a write uses is checked here (types and ranges), so a hand-edited
    or damaged manifest fails with one line naming the value, not with a traceback later.
    """
    section = manifest.get("lexical")
    if section is None:
        return None
    if not isinstance(section, dict) or not isinstance(section.get("analyzer"), dict):
        raise IndexCorruptError(
            "malformed 'lexical' section in the manifest; run "
            "`simsearch reindex-lexical NAME` to rebuild the lexical part"
        )
    check_settings(section["analyzer"])
    problem = _ranking_problem(section.get("ranking", RANKING))
    if problem:
        raise IndexCorruptError(
            f"bad 'lexical.ranking' in the manifest ({problem}); run "
            "`simsearch reindex-lexical NAME` to rebuild the lexical part with the default ranking"
        )
    return section


def _ranking_problem(ranking: Any) -> str | None:
    """What is wrong with a manifest's ``lexical.ranking`` (None: usable)."""
    if not isinstance(ranking, dict):
        return f"{ranking!r} is not an object"
    if ranking.get("function", "bm25") != "bm25":
        return f"function {ranking.get('function')!r} is not 'bm25'"
    for key, low, high in (("k1", 0.0, K1_MAX), ("b", 0.0, 1.0)):
        value = ranking.get(key, RANKING[key])
        if type(value) not in (int, float) or not low <= value <= high:  # (NaN fails both)
            return f"{key} {value!r} is not a number from {low:g} to {high:g}"
    return None


def new_settings(analyzer: Analyzer | None = None) -> dict[str, Any]:
    """The ``lexical`` manifest section of a new lexical part."""
    return {
        "engine": ENGINE,
        "table": TABLE,
        "ranking": dict(RANKING),
        "analyzer": (analyzer or Analyzer()).settings(),
    }


def analyzer_of(manifest: Mapping[str, Any]) -> Analyzer | None:
    """The analyzer of the index's lexical part (None without one); raises the install hint for
    a Korean index when kiwipiepy is missing."""
    settings = lexical_settings(manifest)
    return None if settings is None else Analyzer.from_settings(settings["analyzer"])


def reindex_analyzer(
    manifest: Mapping[str, Any], choice: str | None, sample: Callable[[], list[str]]
) -> Analyzer:
    """The analyzer a ``reindex-lexical`` writes with: ``choice`` (``standard``, ``korean``,
    ``auto``), or None to keep the kind the index has (``auto`` without a readable lexical
    part); ``sample()`` gives the stored texts ``auto`` looks at, read only when it is needed."""
    section = manifest.get("lexical")
    if choice is None:
        choice = kind(section.get("analyzer") if isinstance(section, dict) else None)
    check_choice(choice)
    return choose(choice, sample() if choice == "auto" else ())


def stored_sample(db: sqlite3.Connection, limit: int = SAMPLE) -> list[str]:
    """The texts of the first ``limit`` stored documents (what ``auto`` looks at)."""
    return [text for (text,) in db.execute("SELECT text FROM documents ORDER BY rowid LIMIT ?", (limit,))]


def has_table(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    return row is not None


def rebuild(db: sqlite3.Connection, analyzer: Analyzer) -> None:
    """(Re)create the table from every stored text (build, compact, repair, migration)."""
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(_CREATE)
    cursor = db.execute("SELECT rowid, text FROM documents ORDER BY rowid")
    while rows := cursor.fetchmany(_CHUNK):
        _insert(db, analyzer, rows)
    db.execute(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('optimize')")


def update(db: sqlite3.Connection, analyzer: Analyzer, rowids: Iterable[int]) -> None:
    """Bring the rows of ``rowids`` in step with ``documents`` (changed, added or deleted)."""
    wanted = sorted({int(r) for r in rowids})
    for chunk in sql.parts(wanted):
        part, marks = list(chunk), sql.marks(len(chunk))
        db.execute(f"DELETE FROM {TABLE} WHERE rowid IN ({marks})", part)
        _insert(
            db,
            analyzer,
            db.execute(f"SELECT rowid, text FROM documents WHERE rowid IN ({marks})", part).fetchall(),
        )


def _insert(db: sqlite3.Connection, analyzer: Analyzer, rows: list[tuple[int, str]]) -> None:
    """Analyse ``rows`` (rowid, text) as one batch and insert their tokens."""
    tokens = analyzer.many([text for _, text in rows])
    db.executemany(
        f"INSERT INTO {TABLE} (rowid, tokens) VALUES (?, ?)",
        [(rowid, " ".join(t)) for (rowid, _), t in zip(rows, tokens)],
    )


def postings(store: Store) -> bm25.Postings:
    """The BM25 postings of the generation ``store`` holds open (read on first use, then cached;
    see :mod:`simsearch.store.lexical.bm25`), ranked with the manifest's ``lexical.ranking``."""
    from simsearch.store.lexical import bm25  # numpy: not for the CLI's --help, which reads the analyzers

    settings = lexical_settings(dict(store.manifest)) or {}
    return bm25.postings(store, store.db, TABLE, settings.get("ranking") or RANKING)


def disagreement(db: sqlite3.Connection, analyzer: Analyzer, sample: int = 256) -> str | None:
    """Why the lexical table and ``documents`` disagree, or None when they agree.

    Row ids are compared in full; the stored tokens of a spread sample of rows are compared
    with a fresh analysis of their text.
    """
    if not has_table(db):
        return "the lexical table is missing"
    only_docs = db.execute(
        f"SELECT count(*) FROM documents WHERE rowid NOT IN (SELECT rowid FROM {TABLE})"
    ).fetchone()[0]
    only_lex = db.execute(
        f"SELECT count(*) FROM {TABLE} WHERE rowid NOT IN (SELECT rowid FROM documents)"
    ).fetchone()[0]
    if only_docs or only_lex:
        return f"{only_docs} documents missing from the lexical table, {only_lex} lexical rows without a document"
    count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    step = max(1, count // sample)
    rows = db.execute(
        f"SELECT d.rowid, d.text, l.tokens FROM documents d JOIN {TABLE} l ON l.rowid = d.rowid "
        "WHERE d.rowid % ? = 0 LIMIT ?",
        (step, sample),
    ).fetchall()
    for (rowid, _, tokens), fresh in zip(rows, analyzer.many([text for _, text, _ in rows])):
        if tokens != " ".join(fresh):
            return f"row {rowid}: lexical tokens differ from its text's analysis"
    return None
