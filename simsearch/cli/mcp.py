"""``simsearch mcp``: indexes as Model Context Protocol tools over stdio (the ``mcp`` extra)."""

from __future__ import annotations

import click

from simsearch.cli.options import index_dir_option


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME...]")
@index_dir_option
@click.option("--allow-writes", is_flag=True, help="Also offer the add_documents and delete_documents tools.")
@click.option(
    "--max-text",
    type=click.IntRange(min=20),
    default=1000,
    show_default=True,
    help="Cut each text in tool results to this many characters (the result says so).",
)
def mcp(names: tuple[str, ...], index_dir: str | None, allow_writes: bool, max_text: int) -> None:
    """Serve indexes NAME... (default: every index) as MCP tools over stdin/stdout.

    Desktop assistants and agent frameworks launch this command; it speaks the Model Context
    Protocol on stdout, so nothing else is printed there. Tools: search, get_documents,
    list_indexes, describe_index (and add_documents, delete_documents with --allow-writes).

    \b
      simsearch mcp notes scifact --index-dir ~/indexes
    """
    try:
        from simsearch.integrations.mcp import serve_stdio
    except ImportError as exc:  # the one-line message names the extra to install
        raise click.ClickException(str(exc)) from None

    serve_stdio(names, index_dir, allow_writes=allow_writes, max_text=max_text)
