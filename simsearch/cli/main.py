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
    index_dir_option,
    lines_file_option,
    name_argument,
    open_index,
    SummaryGroup,
)
from simsearch.errors import SimsearchError
from simsearch.search.request import MODES
from simsearch.cli.render import (
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


from simsearch.cli.build import build  # noqa: E402
from simsearch.cli.eval import eval_group  # noqa: E402  (eval and lifecycle commands live in their own modules)
from simsearch.cli.updates import add, compact, delete, reindex_lexical, verify  # noqa: E402
from simsearch.cli.export import export  # noqa: E402
from simsearch.cli.serve import serve  # noqa: E402
from simsearch.cli.mcp import mcp  # noqa: E402
from simsearch.cli.info import info, list_  # noqa: E402

main.add_command(build)
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


def run() -> None:
    """The ``simsearch`` command and ``python -m simsearch``: :func:`main` in a process of its
    own, whose long-lived objects leave the garbage collector's full passes once an encoder is
    set up (:func:`simsearch.config.freeze_heap_when_ready`). Tests invoke :func:`main` in
    their own process, which this leaves alone."""
    from simsearch import config

    config.freeze_heap_when_ready()
    main()
