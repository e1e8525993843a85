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
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from simsearch.store import sql

from simsearch.store.lexical import bm25
from simsearch.store.lexical.analyzer import Analyzer
from simsearch.errors import IndexCorruptError

if TYPE_CHECKING:
    from simsearch.store.generation import Store

TABLE = "lexical"
ENGINE = "sqlite-fts5"
RANKING = {"function": "bm25", "k1": 1.2, "b": 0.75}
_CREATE = f"CREATE VIRTUAL TABLE {TABLE} USING fts5(tokens, tokenize='ascii')"
_CHUNK = 2048


def lexical_settings(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``lexical`` section, or None for an index without a lexical part."""
    section = manifest.get("lexical")
    if section is None:
        return None
    if not isinstance(section, dict) or not isinstance(section.get("analyzer"), dict):
        raise IndexCorruptError(
            "malformed 'lexical' section in the manifest; run "
            "`simsearch reindex-lexical NAME` to rebuild the lexical part"
        )
    return section


def new_settings(analyzer: Analyzer | None = None) -> dict[str, Any]:
    """The ``lexical`` manifest section of a new lexical part."""
    return {
        "engine": ENGINE,
        "table": TABLE,
        "ranking": dict(RANKING),
        "analyzer": (analyzer or Analyzer()).settings(),
    }


def analyzer_of(manifest: Mapping[str, Any]) -> Analyzer | None:
    settings = lexical_settings(manifest)
    return None if settings is None else Analyzer.from_settings(settings["analyzer"])


def has_table(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    return row is not None


def rebuild(db: sqlite3.Connection, analyzer: Analyzer) -> None:
    """(Re)create the table from every stored text (build, compact, repair, migration)."""
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(_CREATE)
    cursor = db.execute("SELECT rowid, text FROM documents ORDER BY rowid")
    while rows := cursor.fetchmany(_CHUNK):
        db.executemany(
            f"INSERT INTO {TABLE} (rowid, tokens) VALUES (?, ?)",
            [(rowid, " ".join(analyzer(text))) for rowid, text in rows],
        )
    db.execute(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('optimize')")


def update(db: sqlite3.Connection, analyzer: Analyzer, rowids: Iterable[int]) -> None:
    """Bring the rows of ``rowids`` in step with ``documents`` (changed, added or deleted)."""
    wanted = sorted({int(r) for r in rowids})
    for chunk in sql.parts(wanted):
        part, marks = list(chunk), sql.marks(len(chunk))
        db.execute(f"DELETE FROM {TABLE} WHERE rowid IN ({marks})", part)
        rows = db.execute(f"SELECT rowid, text FROM documents WHERE rowid IN ({marks})", part).fetchall()
        db.executemany(
            f"INSERT INTO {TABLE} (rowid, tokens) VALUES (?, ?)",
            [(rowid, " ".join(analyzer(text))) for rowid, text in rows],
        )


def postings(store: Store) -> bm25.Postings:
    """The BM25 postings of the generation ``store`` holds open (read on first use, then cached;
    see :mod:`simsearch.store.lexical.bm25`), ranked with the manifest's ``lexical.ranking``."""
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
    for rowid, text, tokens in rows:
        if tokens != " ".join(analyzer(text)):
            return f"row {rowid}: lexical tokens differ from its text's analysis"
    return None
