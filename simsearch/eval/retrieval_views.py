"""Retrieval views of data sets that are not retrieval sets: built in memory, files only read.

KorQuAD 1.0 (SQuAD-style question answering) as paragraph retrieval, and STS pairs as paraphrase
retrieval (:class:`ParaphraseSet`, whose queries are corpus sentences themselves). The files are
read as published; the readers they build on are in :mod:`simsearch.eval.datasets`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simsearch.errors import InputError
from simsearch.eval.datasets import BeirDoc, RetrievalSet, read_sts


class ParaphraseSet(RetrievalSet):
    """A retrieval set whose queries are themselves corpus sentences (the paraphrase set):
    ``exclude`` names, per query, its own sentence, which is never credited. A subclass, so
    code that unpacks a :class:`RetrievalSet` into (corpus, queries, qrels) keeps working."""

    _exclude: dict[str, str]

    def __new__(
        cls,
        corpus: dict[str, BeirDoc],
        queries: dict[str, str],
        qrels: dict[str, dict[str, int]],
        exclude: dict[str, str],
    ) -> ParaphraseSet:
        self = super().__new__(cls, corpus, queries, qrels)
        self._exclude = exclude
        return self

    @property
    def exclude(self) -> dict[str, str] | None:
        return self._exclude


def load_paraphrase(path: str | Path, min_gold: float = 4.0) -> ParaphraseSet:
    """STS pairs as paraphrase retrieval: each pair with gold >= ``min_gold`` (and two different
    sentences) asks for its second sentence with its first; the corpus is every distinct sentence
    of the file. Ids: ``s<n>`` for sentences (file order), ``p<line>`` for queries."""
    pairs = read_sts(path)
    sentences = list(dict.fromkeys(s for p in pairs for s in (p.sentence1, p.sentence2)))
    sid = {text: f"s{n}" for n, text in enumerate(sentences, 1)}
    corpus = {sid[text]: BeirDoc("", text) for text in sentences}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    exclude: dict[str, str] = {}
    for n, pair in enumerate(pairs, 1):
        if pair.score >= min_gold and pair.sentence1 != pair.sentence2 and pair.sentence1.strip():
            queries[f"p{n}"] = pair.sentence1
            qrels[f"p{n}"] = {sid[pair.sentence2]: 1}
            exclude[f"p{n}"] = sid[pair.sentence1]
    if not qrels:
        raise InputError(f"{path}: no pair with gold score >= {min_gold}; nothing to evaluate")
    return ParaphraseSet(corpus, queries, qrels, exclude)


# --- KorQuAD --------------------------------------------------------------------------------


def _squad_paragraphs(path: Path, data: Any) -> Iterator[tuple[str, int, str, list[Any]]]:
    """(article title, paragraph index, context, qas) for each paragraph of SQuAD-style JSON."""
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise InputError(f'{path}: expected a JSON object with a "data" list (SQuAD/KorQuAD 1.0)')
    for a, article in enumerate(articles):
        title = article.get("title") if isinstance(article, dict) else None
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(title, str) or not isinstance(paragraphs, list):
            raise InputError(f'{path}: data[{a}] needs a "title" and a "paragraphs" list')
        for p, paragraph in enumerate(paragraphs):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not isinstance(qas, list):
                raise InputError(f'{path}: data[{a}].paragraphs[{p}] needs "context" and "qas"')
            yield title, p, context, qas


def load_korquad(path: str | os.PathLike[str]) -> RetrievalSet:
    """KorQuAD 1.0 (SQuAD-style JSON) as paragraph retrieval, built in memory.

    Corpus: one :class:`BeirDoc` (article title, paragraph context) per distinct context, id
    ``"{title}#{paragraph index}"``. Queries: question id -> question. Qrels: question id ->
    {its paragraph id: 1}. Identical contexts are merged into the first one's id, so a question
    on a duplicate paragraph is not penalised for retrieving its twin. The file is only read:
    KorQuAD's licence (CC BY-ND) forbids distributing a modified copy.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; check the path") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f", line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(f"{path}{where}: not valid UTF-8 JSON ({exc}); use the original file") from exc
    corpus: dict[str, BeirDoc] = {}
    id_of_context: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for title, index, context, qas in _squad_paragraphs(path, data):
        doc_id = id_of_context.setdefault(context, f"{title}#{index}")
        if doc_id == f"{title}#{index}":
            if doc_id in corpus:
                raise InputError(f"{path}: two paragraphs share the id {doc_id!r} (repeated title)")
            corpus[doc_id] = BeirDoc(title, context)
        for qa in qas:
            qid = qa.get("id") if isinstance(qa, dict) else None
            question = qa.get("question") if isinstance(qa, dict) else None
            if not isinstance(qid, str) or not isinstance(question, str):
                raise InputError(f'{path}: a question in {doc_id!r} lacks "id" or "question"')
            if qid in queries:
                raise InputError(f"{path}: question id {qid!r} appears twice; ids must be unique")
            queries[qid] = question
            qrels[qid] = {doc_id: 1}
    return RetrievalSet(corpus, queries, qrels)
