"""``simsearch build``: read documents, encode them (here or on Ray) or take stored vectors, write
an index, say what was built."""

from __future__ import annotations

from typing import Any

import click

from simsearch.cli.options import (
    analyzer_option,
    announce,
    device_option,
    index_dir_option,
    index_name,
    lines_file_option,
    model_option,
    pooling_option,
    progress_bar,
    ray_option,
    reader_options,
)
from simsearch.cli.render import ann_line
from simsearch.encode.models import DEFAULT_MODEL
from simsearch.encode.precision import PRECISIONS
from simsearch.errors import IndexExistsError, InputError
from simsearch.readers import ReadOptions


@click.command()
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
    _refuse_existing(name, index_dir, force)
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
    if vectors_field and ray_address is not None:
        raise click.UsageError("--vectors-field builds from stored vectors: no encoding, so no --ray")
    index_options: dict[str, Any] = dict(
        index_dir=index_dir,
        force=force,
        index_type=index_type,
        target_recall=target_recall,
        shards=shards,
        tune_queries=tuning,
        analyzer=analyzer,
    )
    if ray_address is not None:
        from simsearch.scale.build import EncoderSpec, RayOptions

        spec = EncoderSpec(model, pooling, max_length, batch_size, device, precision)
        ray = RayOptions(ray_address, workers, cpus_per_worker, gpus_per_worker, shard_writers)
        index = _on_ray(sources, options, name, spec, ray, resume=not no_resume, **index_options)
    else:
        announce(f"loading model {model or DEFAULT_MODEL} ...")  # it takes seconds: say so first
        from simsearch.encode.torch_encoder import Encoder

        encoder = Encoder(
            model, pooling, max_length=max_length, batch_size=batch_size, device=device, precision=precision
        )
        if vectors_field:
            index = _from_vectors(sources, options, vectors_field, name, encoder, **index_options)
        else:
            index = _here(sources, options, name, encoder, **index_options)
    _report(name, index)


def _refuse_existing(name: str, index_dir: str | None, force: bool) -> None:
    """Stop before any work if index ``name`` exists and ``force`` is off (a Ray cluster takes
    many seconds to start); anything else in its place is the library's to report."""
    if force:
        return
    from simsearch.store.home import locate

    existing = locate(name, index_dir)
    if (existing / "manifest.json").is_file():
        raise IndexExistsError(
            f"index {name!r} already exists in {existing.parent}; pass --force to replace it"
        )


def _from_vectors(
    sources: tuple[str, ...], options: ReadOptions, field: str, name: str, encoder: Any, **index_options: Any
) -> Any:
    """The index of the Parquet vectors in column ``field``, stored as they are (no encoding)."""
    from simsearch.index import Index
    from simsearch.readers.parquet import precomputed

    return Index.build_from_vectors(
        precomputed(sources, options, field, encoder), name, encoder, **index_options
    )


def _here(
    sources: tuple[str, ...], options: ReadOptions, name: str, encoder: Any, **index_options: Any
) -> Any:
    """The index of ``sources`` encoded in this process, with a progress bar."""
    from simsearch.index import Index
    from simsearch.readers import read_documents
    from simsearch.readers.counting import count_documents

    with progress_bar("encoding", count_documents(sources, options)) as progress:
        return Index.build(
            read_documents(sources, options), name, encoder, progress=progress, **index_options
        )


def _on_ray(
    sources: tuple[str, ...],
    options: ReadOptions,
    name: str,
    spec: Any,
    ray: Any,
    *,
    resume: bool,
    index_dir: str | None,
    **index_options: Any,
) -> Any:
    """The index of ``sources`` encoded by Ray actors (:func:`simsearch.scale.build.ray_build`)."""
    from simsearch.index import opened
    from simsearch.readers.counting import count_documents
    from simsearch.scale.build import ray_build
    from simsearch.store.home import locate

    home = locate(name, index_dir)
    with progress_bar("encoding", count_documents(sources, options)) as progress:
        built, built_stats = ray_build(
            sources,
            home,
            spec,
            ray,
            read_options=options,
            progress=progress,
            resume=resume,
            say=lambda line: click.echo(line, err=True),
            **index_options,
        )
    return opened(home, built, built_stats, exported=True)


def _report(name: str, index: Any) -> None:
    """What was built: documents, truncations, time and rate; the ANN and lexical parts."""
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
