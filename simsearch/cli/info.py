"""``simsearch info`` and ``simsearch list``: what an index holds, which indexes there are."""

from __future__ import annotations

import click

from simsearch.cli.options import index_dir_option, name_argument
from simsearch.cli.render import index_table, json_line, manifest_lines


@click.command()
@name_argument
@click.option("--json", "as_json", is_flag=True)
@index_dir_option
def info(name: str, as_json: bool, index_dir: str | None) -> None:
    """Show the manifest of index NAME (model, pooling, dim, count, files...)."""
    from simsearch.store.home import require_index
    from simsearch.store.shards import read_any_manifest

    path = require_index(name, index_dir)
    manifest = {"name": path.name, "path": str(path), **read_any_manifest(path)}
    if as_json:
        click.echo(json_line(manifest, indent=2))
    else:
        for line in manifest_lines(manifest):
            click.echo(line)


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per index and line.")
@index_dir_option
def list_(as_json: bool, index_dir: str | None) -> None:
    """List the indexes in the index directory."""
    from simsearch.store.home import index_home, list_indexes

    entries = list_indexes(index_dir)
    if as_json:
        for entry in entries:
            click.echo(json_line(entry))
    elif not entries:
        click.echo(f"no indexes in {index_home(index_dir)}", err=True)
    else:
        for line in index_table(entries):
            click.echo(line)
