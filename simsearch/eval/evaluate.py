"""Evaluation: prove the engine keeps its model's quality, and measure an index's own search.

* :func:`evaluate_sts`: Spearman x100 between the cosine of two sentences and the gold score,
  as MTEB reports STS.
* :func:`evaluate_retrieval` (and :func:`evaluate_beir`, :func:`evaluate_korquad` over files):
  nDCG@10, Recall@10/100, MRR@10, MAP@100 as fractions, as BEIR and pytrec_eval report them, of
  the engine's own search: a temporary exact index built with the engine, or an existing index.
* :func:`evaluate_ann`: recall@k of an index's search against exact inner-product search over
  the vectors it stores (an exact index scores 1.0).

Every function reads and checks its input files before it loads a model, so a wrong path fails
at once. Without an ``encoder`` one is built from ``model``, ``pooling``, ``batch_size`` and
``device`` (the :class:`~simsearch.encode.torch_encoder.Encoder` arguments). Data readers live in
:mod:`simsearch.eval.datasets`, metric definitions in :mod:`simsearch.eval.metrics`.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from simsearch.eval.ann_recall import evaluate_ann
from simsearch.errors import InputError, QueryError
from simsearch.eval.datasets import (
    RetrievalSet,
    doc_text,
    load_beir,
    load_korquad,
    load_paraphrase,
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
    read_sts,
)
from simsearch.eval.metrics import REPORT_METRICS, per_query_metrics, spearman
from simsearch.readers import Document
from simsearch.validate import dumps, json_ready

__all__ = [
    "evaluate_ann",
    "evaluate_beir",
    "evaluate_korquad",
    "evaluate_paraphrase",
    "evaluate_retrieval",
    "evaluate_sts",
    "load_retrieval_set",
    "write_per_query",
]

_PART = re.compile(r"^(.*)#\d+$")  # ids of split documents: "<id>#<part>"


def _encoder_fields(encoder: Any) -> dict[str, Any]:
    return {
        "model": encoder.model_id,
        "pooling": encoder.pooling,
        "max_length": encoder.max_length,
        "precision": getattr(encoder, "precision", "fp32"),
    }


def _make_encoder(encoder: Any, options: dict[str, Any]) -> Any:
    if encoder is not None:
        if options:
            raise TypeError(f"pass either an encoder or encoder options, not both ({', '.join(options)})")
        return encoder
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(**options)


# --- STS ------------------------------------------------------------------------------------


def evaluate_sts(
    files: Sequence[str | os.PathLike[str]], encoder: Any = None, **encoder_options: Any
) -> dict[str, Any]:
    """Spearman x100 of cosine vs gold score, per file and over all pairs of ``files`` together.

    Returns ``{"spearman", "pairs", "files": [{"file", "pairs", "spearman"}], "model",
    "pooling", "max_length"}``; ``spearman`` is None when every cosine is equal.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise InputError("no STS file given")
    sets = [(str(f), read_sts(f)) for f in files]
    for name, pairs in sets:
        if len(pairs) < 2:
            raise InputError(f"{name}: holds {len(pairs)} sentence pair(s); Spearman needs at least 2")
        if len({p.score for p in pairs}) < 2:
            raise InputError(f"{name}: every gold score is the same; Spearman is undefined")
    encoder = _make_encoder(encoder, encoder_options)
    per_file = []
    all_gold: list[float] = []
    all_cosine: list[float] = []
    for name, pairs in sets:
        cosine = _pair_cosines(encoder, [p.sentence1 for p in pairs], [p.sentence2 for p in pairs])
        gold = [p.score for p in pairs]
        per_file.append({"file": name, "pairs": len(pairs), "spearman": _spearman100(gold, cosine)})
        all_gold += gold
        all_cosine += cosine.tolist()
    overall = per_file[0]["spearman"] if len(sets) == 1 else _spearman100(all_gold, all_cosine)
    return {"spearman": overall, "pairs": len(all_gold), "files": per_file, **_encoder_fields(encoder)}


def _pair_cosines(encoder: Any, left: list[str], right: list[str]) -> np.ndarray:
    """Cosine of each (left, right) pair; each distinct sentence is encoded once."""
    unique = list(dict.fromkeys(left + right))
    position = {text: i for i, text in enumerate(unique)}
    vectors = encoder.encode(unique)
    a = vectors[[position[t] for t in left]]
    b = vectors[[position[t] for t in right]]
    return np.einsum("ij,ij->i", a, b).astype(np.float64)  # unit rows: inner product = cosine


def _spearman100(gold: Sequence[float], predicted: Sequence[float] | np.ndarray) -> float | None:
    value = spearman(gold, predicted)
    return None if math.isnan(value) else 100.0 * value


# --- retrieval ------------------------------------------------------------------------------


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
    encoder: Any = None,
    *,
    index: Any = None,
    k: int = 100,
    mode: str = "dense",
    metrics: Sequence[str] = (),
    **encoder_options: Any,
) -> dict[str, Any]:
    """Retrieval metrics of the engine's search on ``data`` (corpus, queries, qrels).

    Without ``index``, the corpus (``title + " " + text``) is encoded into a temporary exact index
    that is removed afterwards. With an open :class:`~simsearch.index.Index`, its own model
    searches it; its document ids must be the corpus ids (build with ``--id-field _id``); parts
    of split documents (``id#n``) count as their document, at the best part's rank.

    ``k`` is the search depth; a metric cut deeper than ``k`` is None. ``mode`` is the search
    mode (``dense``, the model's own quality, by default; ``lexical``, ``hybrid``); ``metrics``
    adds metrics to the five reported. Returns the metric means under ``ndcg@10, recall@10,
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
        m = index.manifest  # the model as the index names it (its encoder loads from a path)
        fields = {
            "model": m["model"],
            "pooling": m["pooling"],
            "max_length": m.get("max_length"),
            "precision": m.get("precision", "fp32"),
        }
        documents = len(index)
    else:
        if not data.corpus:
            raise InputError("the corpus holds no documents")
        encoder = _make_encoder(encoder, encoder_options)
        results, analyzer = _search_temporary(data, encoder, texts, k, mode)
        fields, documents = {**_encoder_fields(encoder), "analyzer": analyzer}, len(data.corpus)
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


def evaluate_beir(
    directory: str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    corpus: str | os.PathLike[str] | None = None,
    queries: str | os.PathLike[str] | None = None,
    qrels: str | os.PathLike[str] | None = None,
    index: Any = None,
    index_dir: str | os.PathLike[str] | None = None,
    k: int = 100,
    per_query_file: str | os.PathLike[str] | None = None,
    encoder: Any = None,
    mode: str = "dense",
    **encoder_options: Any,
) -> dict[str, Any]:
    """:func:`evaluate_retrieval` on BEIR files; ``index`` may be an index name or path, opened
    from ``index_dir``. ``per_query_file`` receives the per-query rows (JSON lines)."""
    _check_writable(per_query_file)
    data = load_retrieval_set(directory, split=split, corpus=corpus, queries=queries, qrels=qrels)
    if index is None or not isinstance(index, (str, os.PathLike)):
        report = evaluate_retrieval(data, encoder, index=index, k=k, mode=mode, **encoder_options)
    else:
        from simsearch.index import Index

        opened = Index.open(index, index_dir=index_dir)
        try:
            report = evaluate_retrieval(data, index=opened, k=k, mode=mode)
        finally:
            opened.close()
    if per_query_file is not None:
        write_per_query(report["per_query"], per_query_file)
    return report


def evaluate_korquad(
    file: str | os.PathLike[str],
    encoder: Any = None,
    *,
    k: int = 100,
    per_query_file: str | os.PathLike[str] | None = None,
    mode: str = "dense",
    **encoder_options: Any,
) -> dict[str, Any]:
    """KorQuAD 1.0 as paragraph retrieval (question -> its paragraph), built in memory."""
    _check_writable(per_query_file)
    report = evaluate_retrieval(load_korquad(file), encoder, k=k, mode=mode, **encoder_options)
    if per_query_file is not None:
        write_per_query(report["per_query"], per_query_file)
    return report


def evaluate_paraphrase(
    file: str | os.PathLike[str],
    encoder: Any = None,
    *,
    min_gold: float = 4.0,
    k: int = 100,
    per_query_file: str | os.PathLike[str] | None = None,
    mode: str = "dense",
    **encoder_options: Any,
) -> dict[str, Any]:
    """STS pairs with gold >= ``min_gold`` as paraphrase retrieval (first sentence -> its pair,
    every sentence of the file as the corpus, the query's own sentence not counted); reports
    Recall@1 too (see :func:`simsearch.eval.datasets.load_paraphrase`)."""
    _check_writable(per_query_file)
    report = evaluate_retrieval(
        load_paraphrase(Path(file), min_gold),
        encoder,
        k=k,
        mode=mode,
        metrics=("recall@1",),
        **encoder_options,
    )
    if per_query_file is not None:
        write_per_query(report["per_query"], per_query_file)
    return report


def _search_temporary(
    data: RetrievalSet, encoder: Any, queries: list[str], k: int, mode: str
) -> tuple[list[list[Any]], str | None]:
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
        )
        try:
            return index.search(queries, k=depth, mode=mode), _analyzer_name(index.manifest, mode)
        finally:
            index.close()


def _analyzer_name(manifest: dict[str, Any], mode: str) -> str | None:
    """The analyzer a report names (None in dense mode, which uses none)."""
    from simsearch.analysis import describe
    from simsearch.store.lexical import lexical_settings

    settings = lexical_settings(manifest)
    return None if mode == "dense" or settings is None else describe(settings["analyzer"])


def _search_index(index: Any, queries: list[str], k: int, data: RetrievalSet, mode: str) -> list[list[Any]]:
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


def _doc_scores(hits: Iterable[Any], known: set[str]) -> dict[str, float]:
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


def _check_writable(path: str | os.PathLike[str] | None) -> None:
    """Fail before minutes of encoding, not after, when the output file cannot be written."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target} is a directory; give a file name for the per-query rows")
    if not target.absolute().parent.is_dir():
        raise InputError(f"cannot write {target}: folder {target.absolute().parent} does not exist")


def write_per_query(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """One JSON object per query and line, written atomically (all or nothing)."""
    _check_writable(path)
    target = Path(path)
    try:
        handle = tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=target.absolute().parent,
            prefix=f".{target.name}.",
            suffix=".tmp",
            delete=False,
        )
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with handle:
            for row in rows:
                handle.write(dumps(json_ready(row)[0]) + "\n")
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
