"""``simsearch add / delete / compact / verify``: changing an index in place (work in simsearch.store.write.updates)."""

from __future__ import annotations

import sys

import click

from simsearch.cli.options import (
    analyzer_option,
    device_option,
    index_dir_option,
    lines_file_option,
    name_argument,
    open_index,
    progress_bar,
    reader_options,
)
from simsearch.cli.render import json_line, printable
from simsearch.readers import ReadOptions


@click.command()
@name_argument
@click.argument("sources", nargs=-1, required=True)
@reader_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Texts per forward pass [default: the model's].",
)
@device_option
@click.option(
    "--allow-duplicates",
    is_flag=True,
    help="Add documents with derived ids even when their texts are already stored under other "
    "ids (by default such an add stops: it usually means a missing --id-field or a copied file).",
)
@index_dir_option
def add(
    name: str,
    sources: tuple[str, ...],
    fmt: str,
    text_field: tuple[str, ...],
    id_field: str | None,
    split: str,
    batch_size: int | None,
    device: str,
    allow_duplicates: bool,
    index_dir: str | None,
) -> None:
    """Add or update documents of index NAME from SOURCE files (upsert by id).

    Documents whose text and metadata are unchanged are skipped without re-encoding; changed
    ones are re-embedded with the index's own model. The write is atomic.

    \b
      simsearch add notes notes-2.txt
      simsearch add scifact new.jsonl --text-field title --text-field text --id-field _id
      simsearch add scifact big-update.jsonl --device cuda
    """
    from simsearch.readers import read_documents

    from simsearch.readers.counting import count_documents

    index = open_index(name, index_dir)
    options = ReadOptions(fmt, text_field, id_field, split, derived_ids=index.derived_ids)
    with progress_bar("encoding", count_documents(sources, options)) as progress:
        documents = read_documents(sources, options)
        if id_field is None and not allow_duplicates:
            from simsearch.store.write.duplicates import refuse_copies

            documents = refuse_copies(index.path, documents, name=name)
        stats = index.add(documents, batch_size=batch_size, progress=progress, device=device)
    click.echo(
        f"Index {name!r}: {stats.added} added, {stats.updated} updated, {stats.unchanged} "
        f"unchanged ({stats.encoded} encoded, {stats.truncated} truncated); "
        f"{stats.count} documents, {stats.seconds:.1f} s"
    )


@click.command()
@name_argument
@click.argument("ids", nargs=-1)
@lines_file_option(
    "--ids-file", "One id per line, exactly as written (spaces included; empty lines skipped); - for stdin."
)
@index_dir_option
def delete(name: str, ids: tuple[str, ...], ids_file: str | None, index_dir: str | None) -> None:
    """Delete documents by ID from index NAME (unknown ids are reported, not fatal).

    \b
      simsearch delete notes notes.txt:3 notes.txt:7
      simsearch delete scifact --ids-file stale-ids.txt
    """
    from simsearch.readers import read_ids, read_lines_from

    wanted = list(ids) + (read_lines_from(ids_file, read_ids) if ids_file else [])
    if not wanted:
        raise click.UsageError("give at least one ID or --ids-file")
    stats = open_index(name, index_dir).delete(wanted)
    unknown = ""
    if stats.unknown:
        shown = ", ".join(repr(i) for i in stats.unknown[:5])
        unknown = f", {len(stats.unknown)} unknown ({shown}{', ...' if len(stats.unknown) > 5 else ''})"
    click.echo(f"Index {name!r}: {stats.deleted} deleted{unknown}; {stats.count} documents left")


@click.command()
@name_argument
@index_dir_option
def compact(name: str, index_dir: str | None) -> None:
    """Rewrite index NAME so the space of deleted and replaced documents is reclaimed."""

    stats = open_index(name, index_dir).compact()
    click.echo(
        f"Index {name!r}: compacted {stats.bytes_before:,} -> {stats.bytes_after:,} bytes; "
        f"{stats.count} documents, {stats.seconds:.1f} s"
    )


@click.command()
@name_argument
@click.option("--repair", is_flag=True, help="Rebuild the FAISS file from the stored vectors.")
@click.option(
    "--record-fingerprint",
    is_flag=True,
    help="For an index built before model fingerprints: record the current model's.",
)
@click.option("--json", "as_json", is_flag=True, help="The full report as one JSON object.")
@index_dir_option
def verify(name: str, repair: bool, record_fingerprint: bool, as_json: bool, index_dir: str | None) -> None:
    """Check index NAME: manifest, checksums, FAISS/SQLite agreement, stored vectors, model and
    its fingerprint. Exit 1 on problems. --repair rebuilds the FAISS file and re-encodes stored
    vectors that are not finite; other damage needs a rebuild (see docs/safety.md).

    \b
      simsearch verify notes
      simsearch verify notes --repair
    """
    from simsearch.index import load_encoder
    from simsearch.store.home import require_index
    from simsearch.store.verify import verify_index

    report = verify_index(
        require_index(name, index_dir),
        repair=repair,
        load_encoder=load_encoder,
        record_fingerprint=record_fingerprint,
    )
    if as_json:
        click.echo(json_line(report.to_dict()))
    else:
        for check in report.problems:
            click.echo(printable(f"problem: {check.name}: {check.detail}"), err=True)
        click.echo(printable(report.summary()))
    if not report.ok:
        sys.exit(1)


@click.command(name="reindex-lexical")
@name_argument
@analyzer_option(None)
@index_dir_option
def reindex_lexical(name: str, analyzer: str | None, index_dir: str | None) -> None:
    """(Re)build the lexical (BM25) part of index NAME from its stored texts.

    Gives an index built before simsearch had a lexical part the lexical and hybrid search
    modes, or moves one to another analyzer; no model runs, the write is atomic (a new
    generation).

    \b
      simsearch reindex-lexical notes
      simsearch reindex-lexical ko-notes --analyzer korean
    """
    from simsearch.store.lexical.analyzer import describe

    index = open_index(name, index_dir)
    generation = index.reindex_lexical(analyzer)
    click.echo(
        f"Index {name!r}: lexical part rebuilt from {len(index)} stored texts with "
        f"{describe(index.manifest['lexical']['analyzer'])}, generation {generation}"
    )
