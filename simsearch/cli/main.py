"""The ``simsearch`` command: parse options, make one library call, render the result.

Heavy imports (torch, transformers, faiss) happen inside the commands that need them, so
``simsearch --help`` and option errors answer at once.
"""

from __future__ import annotations

from typing import Any

import click

from simsearch import __version__
from simsearch.cli.options import (
    MIN_SCORE,
    analyzer_option,
    announce,
    device_option,
    index_dir_option,
    index_name,
    lines_file_option,
    model_option,
    name_argument,
    open_index,
    pooling_option,
    progress_bar,
    ray_option,
    reader_options,
    SummaryGroup,
)
from simsearch.errors import IndexExistsError, InputError, SimsearchError
from simsearch.encode.models import DEFAULT_MODEL
from simsearch.encode.precision import PRECISIONS
from simsearch.search.request import MODES
from simsearch.readers import ReadOptions
from simsearch.cli.render import (
    ann_line,
    hit_json,
    hits_table,
    printable,
)


class _Group(SummaryGroup):
    """Maps the library's errors to ``Error: ...`` and exit code 1, once, for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SimsearchError as exc:  # (file names in messages may hold terminal escapes too)
            raise click.ClickException(printable(str(exc))) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="simsearch")
def main() -> None:
    """Semantic similarity search over your text, offline.

    \b
      simsearch build notes.txt --name notes
      simsearch query notes "how do I keep bread fresh?"
    """
    from simsearch import config

    config.thread_defaults()  # before any command loads torch or FAISS


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--name", required=True, callback=index_name, help="Index name (letters, digits, _ . -).")
@model_option
@pooling_option
@reader_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Texts encoded per forward pass: larger is faster until memory runs short.",
)
@click.option("--max-length", type=click.IntRange(min=2), help="Token limit (capped at the model's).")
@device_option
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="Encoder arithmetic: fp32 exact; int8, and bf16 on CPUs with AVX-512 or AMX, faster, "
    "approximate. Queries use the index's precision.",
)
@click.option(
    "--index-type",
    default="auto",
    show_default=True,
    help="auto (exact while small, then tuned ANN), flat, hnsw, ivf, ivfpq, "
    "or a FAISS factory string such as HNSW48.",
)
@click.option(
    "--target-recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    help="Recall@10 that ANN search parameters are tuned to reach.",
)
@lines_file_option(
    "--tune-queries",
    "Queries like your users' (one per line, - for stdin) to tune ANN search on "
    "[default: 1,000 stored documents].",
)
@click.option(
    "--shards",
    type=click.IntRange(1, 1024),
    default=None,
    help="Split the index into N shards routed by id hash [default: one plain index].",
)
@ray_option
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True, help="With --ray: encoder actors."
)
@click.option(
    "--cpus-per-worker",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="With --ray: CPUs each encoder actor reserves.",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="With --ray: GPUs each encoder actor reserves (use --device cuda).",
)
@click.option(
    "--shard-writers",
    type=click.Choice(["driver", "cluster"]),
    default="driver",
    show_default=True,
    help="With --ray --shards: who writes the shards and builds their FAISS files: this process, "
    "or a Ray actor per shard (the index directory on a file system every node shares).",
)
@click.option(
    "--no-resume",
    is_flag=True,
    help="With --ray: start afresh, discarding what a failed earlier build of the same input and "
    "options encoded (by default a rerun encodes only the input parts it had not finished).",
)
@index_dir_option
@click.option("--force", is_flag=True, help="Replace an existing index of that name.")
@click.option(
    "--vectors-field",
    metavar="COLUMN",
    help="Parquet column of precomputed vectors "
    "(a `simsearch export --vectors` file): stored as they are, not re-encoded.",
)
@analyzer_option("auto")
def build(
    sources: tuple[str, ...],
    name: str,
    model: str | None,
    pooling: str,
    fmt: str,
    text_field: tuple[str, ...],
    id_field: str | None,
    split: str,
    batch_size: int,
    max_length: int | None,
    device: str,
    precision: str,
    index_type: str,
    target_recall: float,
    shards: int | None,
    ray_address: str | None,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    shard_writers: str,
    no_resume: bool,
    index_dir: str | None,
    force: bool,
    vectors_field: str | None,
    tune_queries: str | None,
    analyzer: str,
) -> None:
    """Build index NAME from SOURCE files, directories or - (stdin); with --ray also Parquet at s3:// (or other pyarrow) URIs.

    \b
      simsearch build corpus.jsonl --name scifact \\
          --text-field title --text-field text --id-field _id
      simsearch build big.jsonl --name big --shards 8 --ray=auto --workers 16
      simsearch build s3://bucket/corpus/ --name big --id-field id --ray=10.0.0.5:6379
      simsearch build corpus.jsonl --name docs --index-type hnsw --tune-queries query-log.txt
      simsearch build ko-notes/ --name ko --analyzer korean
    """
    if not force:  # before any work: a Ray cluster takes many seconds to start
        from simsearch.store.home import locate

        existing = locate(name, index_dir)
        if (existing / "manifest.json").is_file():  # (anything else there: the library says what)
            raise IndexExistsError(
                f"index {name!r} already exists in {existing.parent}; pass --force to replace it"
            )
    options = ReadOptions(fmt, text_field, id_field, split)
    tuning = None
    if tune_queries is not None:  # read before any encoding, so a bad file costs nothing
        from simsearch.readers import read_lines_from, read_queries

        tuning = read_lines_from(tune_queries, read_queries)
        if not tuning:
            raise InputError(f"{tune_queries}: no queries in it (only empty lines?); give one query per line")
    if shard_writers != "driver" and ray_address is None:
        raise click.UsageError("--shard-writers cluster writes the shards on Ray: add --ray")
    if no_resume and ray_address is None:
        raise click.UsageError("--no-resume is for builds on Ray (only they resume): add --ray")
    if vectors_field:
        if ray_address is not None:
            raise click.UsageError("--vectors-field builds from stored vectors: no encoding, so no --ray")
        from simsearch.encode.torch_encoder import Encoder
        from simsearch.index import Index
        from simsearch.readers.parquet import precomputed

        announce(f"loading model {model or DEFAULT_MODEL} ...")
        encoder = Encoder(
            model, pooling, max_length=max_length, batch_size=batch_size, device=device, precision=precision
        )
        index = Index.build_from_vectors(
            precomputed(sources, options, vectors_field, encoder),
            name,
            encoder,
            index_dir=index_dir,
            force=force,
            index_type=index_type,
            target_recall=target_recall,
            shards=shards,
            tune_queries=tuning,
            analyzer=analyzer,
        )
    else:
        from simsearch.readers.counting import count_documents

        encoder = None
        if ray_address is None:  # loading takes seconds: say so before the bar starts
            from simsearch.encode.torch_encoder import Encoder

            announce(f"loading model {model or DEFAULT_MODEL} ...")
            encoder = Encoder(
                model,
                pooling,
                max_length=max_length,
                batch_size=batch_size,
                device=device,
                precision=precision,
            )
        with progress_bar("encoding", count_documents(sources, options)) as progress:
            if ray_address is not None:
                from simsearch.index import opened
                from simsearch.scale.build import EncoderSpec, RayOptions, ray_build
                from simsearch.store.home import locate

                spec = EncoderSpec(model, pooling, max_length, batch_size, device, precision)
                built, built_stats = ray_build(
                    sources,
                    locate(name, index_dir),
                    spec,
                    RayOptions(ray_address, workers, cpus_per_worker, gpus_per_worker, shard_writers),
                    read_options=options,
                    shards=shards,
                    force=force,
                    index_type=index_type,
                    target_recall=target_recall,
                    progress=progress,
                    tune_queries=tuning,
                    analyzer=analyzer,
                    resume=not no_resume,
                    say=lambda line: click.echo(line, err=True),
                )
                index = opened(locate(name, index_dir), built, built_stats, exported=True)
            else:
                from simsearch.index import Index
                from simsearch.readers import read_documents

                assert encoder is not None  # loaded above
                index = Index.build(
                    read_documents(sources, options),
                    name,
                    encoder,
                    index_dir=index_dir,
                    force=force,
                    progress=progress,
                    index_type=index_type,
                    target_recall=target_recall,
                    shards=shards,
                    tune_queries=tuning,
                    analyzer=analyzer,
                )
    stats = index.last_build
    assert stats is not None  # set by Index.build
    click.echo(
        f"Built index {name!r} at {index.path}: {stats.documents} documents, "
        f"{stats.truncated} truncated at {index.encoder.max_length} tokens, "
        f"{stats.seconds:.1f} s, {stats.per_second:.1f} documents/s"
    )
    click.echo(ann_line(index.manifest))
    if isinstance(index.manifest.get("lexical"), dict):  # what `--analyzer auto` picked
        from simsearch.store.lexical.analyzer import describe

        click.echo(f"lexical part: {describe(index.manifest['lexical']['analyzer'])}")


@main.command()
@name_argument
@click.argument("queries", nargs=-1)
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit and line.")
@click.option("--min-score", type=MIN_SCORE, help="Drop hits whose cosine is below this (-1 to 1).")
@lines_file_option("--queries-file", "One query per line; - for stdin.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default=None,
    help="dense (cosine), lexical (BM25) or hybrid (fused) [default: hybrid when the "
    "index has a lexical part, else dense].",
)
@click.option(
    "--where",
    multiple=True,
    metavar="FILTER",
    help="Metadata filter, repeatable (AND): FIELD=VALUE, FIELD!=VALUE, FIELD<VALUE, <=, >, >= "
    "(numbers, ISO dates), 'FIELD in a,b,c', 'FIELD not in a,b,c', 'FIELD exists'; join them "
    "with and, or, not and parentheses: 'lang=ko and (year>=2020 or not source=wiki)'. Quote "
    "values holding and/or, commas, operators or parentheses: 'title=\"a and b\"'. A comparison is "
    "false for a document without the field; != and 'not in' are true for it.",
)
@index_dir_option
def query(
    name: str,
    queries: tuple[str, ...],
    k: int,
    as_json: bool,
    min_score: float | None,
    queries_file: str | None,
    mode: str | None,
    where: tuple[str, ...],
    index_dir: str | None,
) -> None:
    """Search index NAME for QUERY texts (all encoded in one batch).

    \b
      simsearch query scifact "vitamin D and bone density" -k 5 --json
      simsearch query news "election results" --mode lexical --where lang=en --where "year>=2020"
      simsearch query news "budget" --where "lang=ko and (year>=2020 or not source=wiki)"
    """
    from simsearch.readers import read_lines_from, read_queries

    texts = list(queries)
    if queries_file is not None:
        texts += read_lines_from(queries_file, read_queries)
    if not texts:
        raise click.UsageError("give at least one QUERY or --queries-file")
    from simsearch.search.where_text import parse_cli

    filters = parse_cli(where) if where else None
    results = open_index(name, index_dir).search(texts, k=k, min_score=min_score, mode=mode, where=filters)
    for number, (text, hits) in enumerate(zip(texts, results)):
        if as_json:
            for hit in hits:
                click.echo(hit_json(text, hit))
            continue
        if len(texts) > 1:
            click.echo(("\n" if number else "") + f"query: {printable(text)}")
        if not hits:
            click.echo("no results" + (f" with cosine >= {min_score}" if min_score is not None else ""))
            continue
        for line in hits_table(hits):
            click.echo(line)


from simsearch.cli.eval import eval_group  # noqa: E402  (eval and lifecycle commands live in their own modules)
from simsearch.cli.updates import add, compact, delete, reindex_lexical, verify  # noqa: E402
from simsearch.cli.export import export  # noqa: E402
from simsearch.cli.serve import serve  # noqa: E402
from simsearch.cli.mcp import mcp  # noqa: E402
from simsearch.cli.info import info, list_  # noqa: E402

main.add_command(eval_group)
main.add_command(add)
main.add_command(delete)
main.add_command(compact)
main.add_command(verify)
main.add_command(export)
main.add_command(reindex_lexical)
main.add_command(serve)
main.add_command(mcp)
main.add_command(info)
main.add_command(list_)
