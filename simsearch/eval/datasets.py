"""Readers for the evaluation datasets as published: STS pairs and BEIR retrieval sets.

Every reader takes the files as published (see ``shared/data/*/SOURCE.md``) and raises
:class:`~simsearch.errors.InputError` naming the file and line for data it cannot read. Text is
UTF-8 (a BOM is accepted) with LF or CRLF line endings. Retrieval sets built from other data
(KorQuAD, STS pairs as paraphrase retrieval) are in :mod:`simsearch.eval.retrieval_views`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from simsearch.errors import InputError


@dataclass(frozen=True)
class StsPair:
    """One STS sentence pair with its gold similarity (0-5 in STS-B and KorSTS)."""

    sentence1: str
    sentence2: str
    score: float


@dataclass(frozen=True)
class BeirDoc:
    """One corpus document in BEIR's shape: a (possibly empty) title and a body."""

    title: str
    text: str


class RetrievalSet(NamedTuple):
    """A retrieval benchmark: corpus, the queries to run, and their relevance judgements."""

    corpus: dict[str, BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def exclude(self) -> dict[str, str] | None:
        """Per query, a corpus document it must not be credited with (see
        :class:`~simsearch.eval.retrieval_views.ParaphraseSet`)."""
        return None


def doc_text(doc: BeirDoc) -> str:
    """The text to encode for a document: ``title + " " + text``, stripped, as BEIR does."""
    return (doc.title + " " + doc.text).strip()


# --- line reading ---------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its LF/CRLF ending), decoding each line separately.

    Splitting only on ``\\n`` (not on every character Python calls a line break) keeps stray
    control characters inside a field, and per-line decoding lets a bad byte name its line.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\n").removesuffix(b"\r")
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}, line {lineno}: not valid UTF-8 (byte {exc.start}); save the file as UTF-8"
                ) from exc


def _error(path: Path, lineno: int, problem: str) -> InputError:
    return InputError(f"{path}, line {lineno}: {problem}")


# --- STS ------------------------------------------------------------------------------------

# STS Benchmark's headerless layout: genre, file, year, id, score, sentence1, sentence2[, ...].
_STS_COLUMNS = {"score": 4, "sentence1": 5, "sentence2": 6}


def read_sts(path: str | os.PathLike[str]) -> list[StsPair]:
    """Read an STS file: STS Benchmark ``sts-*.csv`` (no header) or KorSTS ``sts-*.tsv``.

    The layout is detected from the first line: a header naming ``score``, ``sentence1`` and
    ``sentence2`` gives the columns by name, otherwise STS-B's fixed columns 5-7 are used.
    Fields are split on tabs with no quote handling, since sentences hold stray ``"``.
    Columns after the sentences (licence notes in STS-B) are ignored; blank lines are skipped.
    """
    path = Path(path)
    columns = _STS_COLUMNS
    pairs: list[StsPair] = []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        names = [f.strip().lower() for f in fields]
        if lineno == 1 and set(_STS_COLUMNS) <= set(names):
            columns = {name: names.index(name) for name in _STS_COLUMNS}
            continue
        pairs.append(_sts_row(path, lineno, fields, columns))
    return pairs


def _sts_row(path: Path, lineno: int, fields: list[str], columns: dict[str, int]) -> StsPair:
    needed = max(columns.values()) + 1
    if len(fields) < needed:
        raise _error(
            path,
            lineno,
            f"expected at least {needed} tab-separated columns (score, sentence1, sentence2 in "
            f"columns {', '.join(str(c + 1) for c in columns.values())}), found {len(fields)}; "
            "fix or remove the row",
        )
    raw_score = fields[columns["score"]].strip()
    try:
        score = float(raw_score)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise _error(path, lineno, f"score {raw_score!r} is not a number; fix the row")
    return StsPair(fields[columns["sentence1"]], fields[columns["sentence2"]], score)


# --- BEIR -----------------------------------------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, record id, record) for each non-blank line of a BEIR JSONL file."""
    seen: set[str] = set()
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(path, lineno, f"not valid JSON ({exc.msg}); fix the line") from exc
        if not isinstance(record, dict) or not isinstance(record.get("_id"), (str, int)):
            raise _error(path, lineno, 'expected a JSON object with an "_id"; fix the line')
        record_id = str(record["_id"])
        if record_id in seen:
            raise _error(path, lineno, f"duplicate _id {record_id!r}; ids must be unique")
        seen.add(record_id)
        yield lineno, record_id, record


def _text_field(path: Path, lineno: int, record: dict[str, Any], key: str, default: str | None) -> str:
    value = record.get(key, default)
    if value is None and default is not None:
        value = default  # some BEIR corpora write "title": null
    if not isinstance(value, str):
        raise _error(path, lineno, f'"{key}" must be a string; fix the line')
    return value


def read_beir_corpus(path: str | os.PathLike[str]) -> dict[str, BeirDoc]:
    """Read BEIR ``corpus.jsonl``: doc id -> :class:`BeirDoc` (title may be absent -> "")."""
    path = Path(path)
    return {
        doc_id: BeirDoc(
            _text_field(path, lineno, record, "title", ""),
            _text_field(path, lineno, record, "text", None),
        )
        for lineno, doc_id, record in _jsonl_records(path)
    }


def read_beir_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read BEIR ``queries.jsonl``: query id -> query text (``metadata`` is ignored)."""
    path = Path(path)
    return {
        query_id: _text_field(path, lineno, record, "text", None)
        for lineno, query_id, record in _jsonl_records(path)
    }


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read BEIR qrels TSV (``query-id  corpus-id  score``): query id -> doc id -> relevance.

    The header line is optional; a repeated (query, doc) pair keeps the last score, as BEIR.
    Rows with relevance 0 are kept: the metrics treat them as judged not relevant.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3:
            raise _error(
                path,
                lineno,
                f"expected 3 tab-separated columns (query-id, corpus-id, score), "
                f"found {len(fields)}; fix the row",
            )
        query_id, doc_id, raw_score = fields
        try:
            score = int(raw_score)
        except ValueError as exc:
            if lineno == 1:
                continue  # the header line
            raise _error(path, lineno, f"score {raw_score!r} is not an integer; fix it") from exc
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def load_beir(directory: str | os.PathLike[str], split: str = "test") -> RetrievalSet:
    """Load a BEIR dataset folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``.

    Queries are restricted to those judged in the split, as BEIR's loader does.
    """
    directory = Path(directory)
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (directory / "qrels").glob("*.tsv"))
        raise InputError(
            f"no qrels for split {split!r} in {directory} (looked for {qrels_path}); "
            f"available splits: {', '.join(splits) or 'none'}"
        )
    qrels = read_qrels(qrels_path)
    all_queries = read_beir_queries(directory / "queries.jsonl")
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise InputError(
            f"{qrels_path} judges {len(missing)} queries absent from "
            f"{directory / 'queries.jsonl'} (first: {missing[0]!r}); the files do not match"
        )
    queries = {query_id: all_queries[query_id] for query_id in qrels}
    return RetrievalSet(read_beir_corpus(directory / "corpus.jsonl"), queries, qrels)
