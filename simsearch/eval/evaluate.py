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
``device`` (the :class:`~simsearch.encode.torch_encoder.Encoder` arguments). The runs live in
:mod:`simsearch.eval.sts`, :mod:`simsearch.eval.retrieval` and :mod:`simsearch.eval.ann_recall`
(re-exported here), data readers in :mod:`simsearch.eval.datasets`, metric definitions in
:mod:`simsearch.eval.metrics`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from simsearch.errors import InputError
from simsearch.eval.ann_recall import evaluate_ann
from simsearch.eval.retrieval_views import load_korquad, load_paraphrase
from simsearch.eval.retrieval import evaluate_retrieval, load_retrieval_set
from simsearch.eval.sts import evaluate_sts
from simsearch.validate import dumps, json_ready

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.index import Index

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


def evaluate_beir(
    directory: str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    corpus: str | os.PathLike[str] | None = None,
    queries: str | os.PathLike[str] | None = None,
    qrels: str | os.PathLike[str] | None = None,
    index: Index | str | os.PathLike[str] | None = None,
    index_dir: str | os.PathLike[str] | None = None,
    k: int = 100,
    per_query_file: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    mode: str = "dense",
    analyzer: str = "auto",
    **encoder_options: Any,
) -> dict[str, Any]:
    """:func:`evaluate_retrieval` on BEIR files; ``index`` may be an index name or path, opened
    from ``index_dir``. ``per_query_file`` receives the per-query rows (JSON lines)."""
    _check_writable(per_query_file)
    data = load_retrieval_set(directory, split=split, corpus=corpus, queries=queries, qrels=qrels)
    if index is None or not isinstance(index, (str, os.PathLike)):
        report = evaluate_retrieval(
            data, encoder, index=index, k=k, mode=mode, analyzer=analyzer, **encoder_options
        )
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
    encoder: Encoder | None = None,
    *,
    k: int = 100,
    per_query_file: str | os.PathLike[str] | None = None,
    mode: str = "dense",
    analyzer: str = "auto",
    **encoder_options: Any,
) -> dict[str, Any]:
    """KorQuAD 1.0 as paragraph retrieval (question -> its paragraph), built in memory."""
    _check_writable(per_query_file)
    report = evaluate_retrieval(
        load_korquad(file), encoder, k=k, mode=mode, analyzer=analyzer, **encoder_options
    )
    if per_query_file is not None:
        write_per_query(report["per_query"], per_query_file)
    return report


def evaluate_paraphrase(
    file: str | os.PathLike[str],
    encoder: Encoder | None = None,
    *,
    min_gold: float = 4.0,
    k: int = 100,
    per_query_file: str | os.PathLike[str] | None = None,
    mode: str = "dense",
    analyzer: str = "auto",
    **encoder_options: Any,
) -> dict[str, Any]:
    """STS pairs with gold >= ``min_gold`` as paraphrase retrieval (first sentence -> its pair,
    every sentence of the file as the corpus, the query's own sentence not counted); reports
    Recall@1 too (see :func:`simsearch.eval.retrieval_views.load_paraphrase`). STS Benchmark ``.csv``
    and KorSTS ``.tsv`` files both work."""
    _check_writable(per_query_file)
    report = evaluate_retrieval(
        load_paraphrase(Path(file), min_gold),
        encoder,
        k=k,
        mode=mode,
        analyzer=analyzer,
        metrics=("recall@1",),
        **encoder_options,
    )
    if per_query_file is not None:
        write_per_query(report["per_query"], per_query_file)
    return report


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
