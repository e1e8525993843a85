"""What text, ids and metadata may hold on the way in, and JSON that stays valid on the way out.

Every entry point (readers, :class:`~simsearch.index.Index` build / add / delete / search, the
CLI's arguments, HTTP bodies) runs its input through these checks, so a bad value is refused
with a one-line message naming where it came from, before it reaches the tokenizer, SQLite or
a batch shared with other requests. Output goes through :func:`json_ready` and :func:`dumps`,
so data stored by an older version can never turn into invalid JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence

from simsearch.errors import InputError, QueryError

MAX_DEPTH = 64  # nesting of metadata values; deeper is not metadata but an attack on recursion


def unicode_problem(text: str) -> str | None:
    """Why ``text`` is not valid Unicode text (a lone surrogate), or None when it is.

    Python strings may hold surrogate code points (from a ``\\ud800`` JSON escape, or an
    undecodable byte in a command-line argument), which no encoder, tokenizer or database takes.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        origin = (
            f"an undecodable byte 0x{code - 0xDC00:02x}, the text is not UTF-8"
            if 0xDC80 <= code <= 0xDCFF
            else "a \\u escape that is half a surrogate pair"
        )
        return f"invalid Unicode: lone surrogate U+{code:04X} at character {exc.start + 1} ({origin})"
    return None


def text_problem(value: Any, what: str = "text") -> str | None:
    """Why ``value`` cannot be a text (query, document text, id), or None."""
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    problem = unicode_problem(value)
    return f"{what}: {problem}" if problem else None


def metadata_problem(value: Any, where: str = "metadata", depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored as JSON metadata (non-finite number, bad text, odd type)."""
    if depth > MAX_DEPTH:
        return f"{where} is nested more than {MAX_DEPTH} levels deep"
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return (
            f"{where} is {value!r}, not a finite number (JSON has no NaN or Infinity); use null or a string"
        )
    if isinstance(value, str):
        problem = unicode_problem(value)
        return f"{where}: {problem}" if problem else None
    if isinstance(value, (list, tuple)):
        for number, item in enumerate(value):
            problem = metadata_problem(item, f"{where}[{number}]", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} of type {type(key).__name__}; keys must be strings"
            problem = unicode_problem(key)
            if problem:
                return f"{where} key: {problem}"
            problem = metadata_problem(item, f"{where}.{key}", depth + 1)
            if problem:
                return problem
        return None
    return f"{where} is of type {type(value).__name__}, which JSON cannot hold"


def document_problem(doc_id: Any, text: Any, metadata: Any) -> str | None:
    """Why a document cannot be stored, or None: id, text and metadata checked in that order."""
    if isinstance(doc_id, str) and not doc_id:
        return "empty document id"
    problem = text_problem(doc_id, "id") or text_problem(text, "text")
    if problem:
        return problem
    if not isinstance(metadata, dict):
        return f"metadata must be an object (dict), got {type(metadata).__name__}"
    return metadata_problem(metadata)


def check_document(doc: Any) -> None:
    """Raise :class:`InputError` naming ``doc.where`` (file:line) when ``doc`` cannot be stored."""
    problem = document_problem(doc.id, doc.text, doc.metadata)
    if problem:
        where = doc.where or f"document {doc.id!r}"
        raise InputError(f"{where}: {problem}")


def document_ids(ids: Iterable[Any]) -> list[str]:
    """Ids to delete as strings (an integer as its decimal string, as the readers store it);
    anything else, or text that is not valid Unicode, is an :class:`InputError`."""
    out = []
    for number, doc_id in enumerate(ids, 1):
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        problem = text_problem(doc_id, f"id {number}")
        if problem:
            raise InputError(problem)
        out.append(doc_id)
    return out


def lookup_ids(ids: Iterable[Any]) -> list[str]:
    """Ids to look up, once each and in order, without those no document can have (text that is
    not valid Unicode: documents are checked on the way in, and SQLite could not bind it)."""
    return [doc_id for doc_id in dict.fromkeys(str(i) for i in ids) if not unicode_problem(doc_id)]


def json_ready(value: Any) -> tuple[Any, int]:
    """``value`` with every NaN / Infinity replaced by None, and how many were replaced.

    New input never holds them (it is refused), but an index written by an older version may;
    its answers must still be valid JSON.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        count = 0
        for key, item in value.items():
            out[key], found = json_ready(item)
            count += found
        return out, count
    if isinstance(value, (list, tuple)):
        items: list[Any] = []
        count = 0
        for item in value:
            clean, found = json_ready(item)
            items.append(clean)
            count += found
        return items, count
    return value, 0


def dumps(value: Any, **options: Any) -> str:
    """Strict JSON (never NaN or Infinity), non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, **options)


def check_queries(query: str | Sequence[str], k: Any, min_score: Any = None) -> list[str]:
    """The queries of a search as a list, checked by :func:`check_query`."""
    queries: list[str] = [query] if isinstance(query, str) else list(query)
    if not queries:
        raise QueryError("no query given")
    check_query(queries, k, min_score)
    return queries


def check_query(queries: Sequence[Any], k: Any, min_score: Any) -> None:
    """Refuse what no search can answer: empty or invalid text, k not a whole number >= 1,
    ``min_score`` not a finite number (before any of it reaches a shared batch)."""
    for number, q in enumerate(queries, 1):
        if not isinstance(q, str) or not q.strip():
            raise QueryError("empty query; give some text to search for")
        problem = unicode_problem(q)
        if problem:
            where = "query" if len(queries) == 1 else f"query {number}"
            raise QueryError(f"{where}: {problem}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be a whole number of at least 1, got {k!r}")
    if min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not math.isfinite(min_score)
    ):  # NaN would silently drop every hit
        raise QueryError(f"min_score must be a finite number (a cosine, -1 to 1), got {min_score!r}")
