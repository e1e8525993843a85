"""Retrieval quality of the engine's own search: nDCG@10, Recall@10/100, MRR@10, MAP@100 as
fractions (as BEIR and pytrec_eval report them), over a temporary exact index built with the engine
or over an existing index; parts of split documents count as their document.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from simsearch.errors import InputError, QueryError
from simsearch.eval.datasets import (
    RetrievalSet,
    doc_text,
    load_beir,
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
)
from simsearch.eval.encoder import encoder_fields, make_encoder
from simsearch.eval.metrics import REPORT_METRICS, per_query_metrics
from simsearch.readers import Document
from simsearch.store.manifest import ModelIdentity

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.index import Index
    from simsearch.search.hits import Hit

_PART = re.compile(r"^(.*)#\d+$")  # ids of split documents: "<id>#<part>"


def load_retrieval_set(
    directory: str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    corpus: str | os.PathLike[str] | None = None,
    queries: str | os.PathLike[str] | None = None,
    qrels: str | os.PathLike[str] | None = None,
) -> RetrievalSet:
    """A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) or the three
    files; the corpus may be left out (empty) when an existing index is to be searched."""
    if directory is not None:
        if not Path(directory).is_dir():
            raise InputError(f"{directory}: no such directory; give a BEIR folder holding corpus.jsonl")
        return load_beir(directory, split)
    if queries is None or qrels is None:
        raise InputError("give a BEIR directory, or a queries file and a qrels file")
    judged = read_qrels(qrels)
    texts = read_beir_queries(queries)
    missing = sorted(set(judged) - set(texts))
    if missing:
        raise InputError(
            f"{qrels} judges {len(missing)} queries absent from {queries} "
            f"(first: {missing[0]!r}); the files do not match"
        )
    docs = read_beir_corpus(corpus) if corpus is not None else {}
    return RetrievalSet(docs, {q: texts[q] for q in judged}, judged)


def evaluate_retrieval(
    data: RetrievalSet,
    encoder: Encoder | None = None,
    *,
    index: Index | None = None,
    k: int = 100,
    mode: str = "dense",
    metrics: Sequence[str] = (),
    analyzer: str = "auto",
    **encoder_options: Any,
) -> dict[str, Any]:
    """Retrieval metrics of the engine's search on ``data`` (corpus, queries, qrels).

    Without ``index``, the corpus (``title + " " + text``) is encoded into a temporary exact index
    that is removed afterwards. With an open :class:`~simsearch.index.Index`, its own model
    searches it; its document ids must be the corpus ids (build with ``--id-field _id``); parts
    of split documents (``id#n``) count as their document, at the best part's rank.

    ``k`` is the search depth; a metric cut deeper than ``k`` is None. ``mode`` is the search
    mode (``dense``, the model's own quality, by default; ``lexical``, ``hybrid``); ``metrics``
    adds metrics to the five reported; ``analyzer`` is the lexical analyzer of the temporary
    index (``auto``, ``standard``, ``korean``; an existing index keeps its own). Returns the metric means under ``ndcg@10, recall@10,
    recall@100, mrr@10, map@100``, plus ``queries``, ``documents``, ``k``, ``mode``,
    ``analyzer`` (lexical and hybrid modes), ``model``, ``pooling``, ``max_length`` and
    ``per_query`` (one dict per judged query: ``query_id``, ``query`` and its metrics).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be a whole number of at least 1, got {k!r}")
    query_ids = [q for q in data.qrels if data.queries.get(q, "").strip()]
    if not query_ids:
        raise InputError("no judged query with text to evaluate; check the queries and qrels files")
    texts = [data.queries[q] for q in query_ids]
    if index is not None:
        if encoder is not None or encoder_options:
            raise TypeError("an existing index is searched with its own model; pass no encoder")
        results = _search_index(index, texts, k, data, mode)
        # the model as the index names it (its encoder loads from a path)
        fields = ModelIdentity.of_manifest(index.manifest).report_fields()
        documents = len(index)
    else:
        if not data.corpus:
            raise InputError("the corpus holds no documents")
        encoder = make_encoder(encoder, encoder_options)
        results, name = _search_temporary(data, encoder, texts, k, mode, analyzer)
        fields, documents = {**encoder_fields(encoder), "analyzer": name}, len(data.corpus)
    if index is not None:
        fields["analyzer"] = _analyzer_name(index.manifest, mode)
    known = _known_ids(data)
    exclude = data.exclude or {}
    run = {
        q: _doc_scores((h for h in hits if h.id != exclude.get(q)), known)
        for q, hits in zip(query_ids, results)
    }
    means, per_query = _metrics(run, data.qrels, k, metrics)
    return {
        **means,
        "documents": documents,
        "k": k,
        "mode": mode,
        **fields,
        "per_query": [{"query_id": q, "query": data.queries.get(q, ""), **m} for q, m in per_query.items()],
    }


def _search_temporary(
    data: RetrievalSet, encoder: Encoder, queries: list[str], k: int, mode: str, analyzer: str
) -> tuple[list[list[Hit]], str | None]:
    """Build the corpus into an exact index in a temporary directory, search it, remove it."""
    from simsearch.index import Index

    documents = (
        Document(doc_id, doc_text(doc), {}, f"corpus document {doc_id!r}")
        for doc_id, doc in data.corpus.items()
    )
    depth = k + 1 if data.exclude else k  # room for the excluded document
    with tempfile.TemporaryDirectory(prefix="simsearch-eval-") as home:
        index = Index.build(
            documents,
            Path(home) / "eval",
            encoder,
            index_type="flat",  # exact at any size
            lexical=mode != "dense",
            analyzer=analyzer,
        )
        try:
            return index.search(queries, k=depth, mode=mode), _analyzer_name(index.manifest, mode)
        finally:
            index.close()


def _analyzer_name(manifest: dict[str, Any], mode: str) -> str | None:
    """The analyzer a report names (None in dense mode, which uses none)."""
    from simsearch.store.lexical.analyzer import describe
    from simsearch.store.lexical import lexical_settings

    settings = lexical_settings(manifest)
    return None if mode == "dense" or settings is None else describe(settings["analyzer"])


def _search_index(index: Index, queries: list[str], k: int, data: RetrievalSet, mode: str) -> list[list[Hit]]:
    """Search an existing index; check that its ids are the corpus' ids."""
    results = index.search(queries, k=k + 1 if data.exclude else k, mode=mode)
    known = _known_ids(data)
    hit_ids = [_corpus_id(h.id, known) for hits in results for h in hits]
    if hit_ids and not any(doc in known for doc in hit_ids):
        what = "corpus" if data.corpus else "qrels"
        raise InputError(
            f"none of the documents index {index.path.name!r} returned (e.g. {hit_ids[0]!r}) is a "
            f"{what} id; build the index with --id-field _id (BEIR's document id)"
        )
    return results


def _known_ids(data: RetrievalSet) -> set[str]:
    return set(data.corpus) or {d for rels in data.qrels.values() for d in rels}


def _corpus_id(hit_id: str, known: set[str]) -> str:
    """The corpus id of a hit: itself, or for a part of a split document ("<id>#<n>") its id."""
    if hit_id in known:
        return hit_id  # KorQuAD's own ids look like "<title>#<n>" too
    match = _PART.match(hit_id)
    return match.group(1) if match and match.group(1) in known else hit_id


def _doc_scores(hits: Iterable[Hit], known: set[str]) -> dict[str, float]:
    """doc id -> score; for split documents the best part's score (hits come best first)."""
    scores: dict[str, float] = {}
    for hit in hits:
        scores.setdefault(_corpus_id(hit.id, known), float(hit.score))
    return scores


def _metrics(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], k: int, extra: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    names = [m for m in (*extra, *REPORT_METRICS) if int(m.split("@")[1]) <= k]
    per_query = per_query_metrics(run, qrels, names)
    if not per_query:
        raise InputError("the qrels hold no query with a relevant document; nothing to evaluate")
    means: dict[str, Any] = {m: None for m in (*extra, *REPORT_METRICS)}
    for name in names:
        means[name] = float(np.mean([row[name] for row in per_query.values()]))
    means["queries"] = len(per_query)
    return means, per_query
