"""Evaluation reports as short tables for people (``--json`` gives programs the numbers)."""

from __future__ import annotations

from typing import Any

_RETRIEVAL_LABELS = {
    "recall@1": "Recall@1",
    "ndcg@10": "nDCG@10",
    "recall@10": "Recall@10",
    "recall@100": "Recall@100",
    "mrr@10": "MRR@10",
    "map@100": "MAP@100",
}


def _model_line(report: dict[str, Any]) -> str:
    line = (
        f"model {report['model']}, pooling {report['pooling']}, precision {report.get('precision', 'fp32')}"
    )
    return line + (f", max length {report['max_length']}" if report.get("max_length") else "")


def _spearman(value: float | None) -> str:
    return "n/a (all cosines equal)" if value is None else f"{value:.2f}"


def sts_lines(report: dict[str, Any]) -> list[str]:
    """One row per file (and a total row for several): pairs and Spearman x100."""
    width = max(len("file"), *(len(f["file"]) for f in report["files"]))
    lines = [_model_line(report), f"{'file':<{width}}  {'pairs':>6}  spearman x100"]
    for row in report["files"]:
        lines.append(f"{row['file']:<{width}}  {row['pairs']:>6}  {_spearman(row['spearman'])}")
    if len(report["files"]) > 1:
        lines.append(f"{'all':<{width}}  {report['pairs']:>6}  {_spearman(report['spearman'])}")
    return lines


def retrieval_lines(report: dict[str, Any]) -> list[str]:
    """The five metrics x100, with the query and document counts they were measured on."""
    lines = [
        _model_line(report),
        f"{report['queries']} queries, {report['documents']} documents, search depth {report['k']}",
        f"{'metric':<11} {'x100':>6}",
    ]
    if report.get("mode"):
        lines.insert(
            1,
            f"mode {report['mode']}" + (f", analyzer {report['analyzer']}" if report.get("analyzer") else ""),
        )
    for key, label in _RETRIEVAL_LABELS.items():
        if key not in report:
            continue
        value = report.get(key)
        shown = f"{100 * value:6.2f}" if value is not None else f"{'-':>6}  (cut deeper than -k)"
        lines.append(f"{label:<11} {shown}")
    return lines


def ann_lines(report: dict[str, Any]) -> list[str]:
    return [
        f"index type {report['index_type']} (FAISS {report['faiss']}), {report['documents']} documents",
        f"recall@{report['k']} {report['recall@k']:.4f} over {report['queries']} stored vectors "
        f"as queries (seed {report['seed']}) against exact inner-product search",
    ]
