"""``simsearch export``: every document of an index as Parquet or JSON lines (work in simsearch.index.export)."""

from __future__ import annotations

import sys

import click

from simsearch.cli.options import index_dir_option, name_argument, open_index


@click.command(context_settings={"allow_extra_args": True})
@click.pass_context
@name_argument
@click.option(
    "--format", "fmt", type=click.Choice(["parquet", "jsonl"]), default="parquet", show_default=True
)
@click.option("--vectors", is_flag=True, help="Include each document's vector (float32).")
@click.option(
    "--metadata",
    type=click.Choice(["json", "columns"]),
    default="json",
    show_default=True,
    help="Metadata as one JSON column/object, or one column/key per metadata key.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Where to write; - for standard output (jsonl only) [default: NAME.parquet, or "
    "standard output for jsonl].",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@index_dir_option
def export(
    ctx: click.Context,
    name: str,
    fmt: str,
    vectors: bool,
    metadata: str,
    output: str | None,
    force: bool,
    index_dir: str | None,
) -> None:
    """Write every document of index NAME (id, text, metadata, optionally vectors).

    A Parquet file written with --vectors records the model in its metadata and builds an
    identical index without re-encoding:

    \b
      simsearch export notes --vectors --output notes.parquet
      simsearch build notes.parquet --name notes-copy --vectors-field vector --id-field id
    """
    if ctx.args:  # `export notes notes.parquet`: the file goes in --output
        raise click.UsageError(
            f"export takes one index name; to write to {ctx.args[0]}, give --output {ctx.args[0]}"
        )
    target = output or (f"{name}.parquet" if fmt == "parquet" else "-")
    index = open_index(name, index_dir)
    try:
        # looked up now, not at import: CliRunner swaps sys.stdout
        count = index.export(
            target, format=fmt, vectors=vectors, metadata=metadata, force=force, stdout=sys.stdout.buffer
        )
    finally:
        index.close()
    if target != "-":
        click.echo(f"Exported {count} documents of index {name!r} to {target}", err=True)
