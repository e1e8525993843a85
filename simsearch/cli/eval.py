"""``simsearch eval``: benchmark figures from the shell (the work is in simsearch.eval.evaluate)."""

from __future__ import annotations

from typing import Any, Callable

import click

from simsearch.cli.eval_options import json_option, model_options, retrieval_options
from simsearch.cli.options import SummaryGroup, index_dir_option
from simsearch.cli.render import json_line
from simsearch.cli.render_eval import ann_lines, retrieval_lines, sts_lines

_JSON_KEYS = (
    "spearman",
    "ndcg@10",
    "recall@1",
    "recall@10",
    "recall@100",
    "mrr@10",
    "map@100",
    "recall@k",
    "queries",
    "mode",
    "analyzer",
    "model",
    "pooling",
    "precision",
)


def _emit(report: dict[str, Any], as_json: bool, lines: Callable[[dict[str, Any]], list[str]]) -> None:
    if as_json:
        summary = {key: value for key, value in report.items() if key != "per_query"}
        ordered = {key: summary.pop(key) for key in _JSON_KEYS if key in summary}
        click.echo(json_line({**ordered, **summary}))
    else:
        for line in lines(report):
            click.echo(line)


@click.group(name="eval", cls=SummaryGroup)
def eval_group() -> None:
    """Measure quality: STS Spearman, retrieval metrics, ANN recall.

    \b
      simsearch eval sts $DATA/stsbenchmark/sts-test.csv
      simsearch eval retrieval $DATA/scifact --split test
      simsearch eval ann scifact --queries 1000 -k 10
    """


@eval_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@model_options
@json_option
def sts(
    files: tuple[str, ...],
    model: str | None,
    pooling: str,
    precision: str,
    batch_size: int,
    device: str,
    as_json: bool,
) -> None:
    """Spearman x100 of cosine vs gold score on STS FILEs (STS-B .csv, KorSTS .tsv).

    \b
      simsearch eval sts $DATA/stsbenchmark/sts-test.csv --pooling mean --json
    """
    from simsearch.eval.evaluate import evaluate_sts

    report = evaluate_sts(
        files, model=model, pooling=pooling, precision=precision, batch_size=batch_size, device=device
    )
    _emit(report, as_json, sts_lines)


@eval_group.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--corpus", type=click.Path(dir_okay=False), help="BEIR corpus.jsonl (_id, title, text).")
@click.option("--queries", type=click.Path(dir_okay=False), help="BEIR queries.jsonl (_id, text).")
@click.option("--qrels", type=click.Path(dir_okay=False), help="BEIR qrels TSV (query-id, corpus-id, score).")
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv of DIRECTORY.")
@click.option("--index", "index_name", help="Search this existing index (its own model) instead.")
@index_dir_option
@retrieval_options
def retrieval(
    directory: str | None,
    corpus: str | None,
    queries: str | None,
    qrels: str | None,
    split: str,
    index_name: str | None,
    index_dir: str | None,
    model: str | None,
    pooling: str,
    precision: str,
    batch_size: int,
    device: str,
    k: int,
    mode: str,
    analyzer: str,
    as_json: bool,
    per_query: str | None,
) -> None:
    """nDCG@10, Recall@10/100, MRR@10, MAP@100 on a BEIR data set (DIRECTORY or the three files).

    Without --index the corpus is encoded into a temporary exact index, removed afterwards.

    \b
      simsearch eval retrieval $DATA/scifact --split test --json
      simsearch eval retrieval $DATA/scifact --index scifact
    """
    from simsearch.eval.evaluate import evaluate_beir

    files = (corpus, queries, qrels)
    if directory and any(files):
        raise click.UsageError("give a DIRECTORY or --corpus/--queries/--qrels, not both")
    needed = files[1:] if index_name else files
    if not directory and not all(needed):
        raise click.UsageError(
            "give a BEIR DIRECTORY, or --queries and --qrels" + ("" if index_name else " and --corpus")
        )
    if index_name and (model or pooling != "auto" or precision != "fp32"):
        raise click.UsageError(
            "--index searches with the index's own model; drop --model/--pooling/--precision"
        )
    # the Encoder's keyword arguments (an index is searched with its own model)
    encoder_options: dict[str, Any] = (
        {}
        if index_name
        else {
            "model": model,
            "pooling": pooling,
            "precision": precision,
            "batch_size": batch_size,
            "device": device,
        }
    )
    report = evaluate_beir(
        directory,
        split=split,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        index=index_name,
        index_dir=index_dir,
        k=k,
        per_query_file=per_query,
        mode=mode,
        analyzer=analyzer,
        **encoder_options,
    )
    _emit(report, as_json, retrieval_lines)


@eval_group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@retrieval_options
def korquad(
    file: str,
    model: str | None,
    pooling: str,
    precision: str,
    batch_size: int,
    device: str,
    k: int,
    mode: str,
    analyzer: str,
    as_json: bool,
    per_query: str | None,
) -> None:
    """KorQuAD 1.0 (SQuAD-style JSON) as paragraph retrieval: each question -> its paragraph.

    The retrieval view is built in memory; the file is only read.

    \b
      simsearch eval korquad $DATA/korquad_v1_dev/KorQuAD_v1.0_dev.json
    """
    from simsearch.eval.evaluate import evaluate_korquad

    report = evaluate_korquad(
        file,
        k=k,
        per_query_file=per_query,
        model=model,
        pooling=pooling,
        precision=precision,
        batch_size=batch_size,
        device=device,
        mode=mode,
        analyzer=analyzer,
    )
    _emit(report, as_json, retrieval_lines)


@eval_group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--min-gold",
    type=click.FloatRange(0, 5),
    default=4.0,
    show_default=True,
    help="Pairs at or above this gold score are paraphrases.",
)
@retrieval_options
def paraphrase(
    file: str,
    min_gold: float,
    model: str | None,
    pooling: str,
    precision: str,
    batch_size: int,
    device: str,
    k: int,
    mode: str,
    analyzer: str,
    as_json: bool,
    per_query: str | None,
) -> None:
    """STS pairs as paraphrase retrieval: first sentence -> its pair among every sentence of FILE.

    Shows a loss on purely semantic queries (few shared words); reports Recall@1 too.

    \b
      simsearch eval paraphrase $DATA/stsbenchmark/sts-test.csv --mode hybrid
    """
    from simsearch.eval.evaluate import evaluate_paraphrase

    report = evaluate_paraphrase(
        file,
        min_gold=min_gold,
        k=k,
        per_query_file=per_query,
        model=model,
        pooling=pooling,
        precision=precision,
        batch_size=batch_size,
        device=device,
        mode=mode,
        analyzer=analyzer,
    )
    _emit(report, as_json, retrieval_lines)


@eval_group.command()
@click.argument("name")
@click.option(
    "--queries",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="How many stored vectors to use as queries (fixed seed).",
)
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@index_dir_option
@json_option
def ann(name: str, queries: int, k: int, seed: int, index_dir: str | None, as_json: bool) -> None:
    """Recall@k of index NAME's own search against exact search over its stored vectors.

    \b
      simsearch eval ann scifact --queries 1000 -k 10
    """
    from simsearch.eval.evaluate import evaluate_ann

    report = evaluate_ann(name, index_dir=index_dir, queries=queries, k=k, seed=seed)
    _emit(report, as_json, ann_lines)
