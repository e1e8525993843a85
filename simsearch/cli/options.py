"""Options and helpers shared by the ``simsearch`` commands."""

from __future__ import annotations

import inspect
import math
import re
import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from simsearch.encode.pooling import POOLING_CHOICES
from simsearch.errors import SimsearchError
from simsearch.readers import FORMATS, SPLITS

if TYPE_CHECKING:
    from simsearch.index import Index


def summary(command: click.Command) -> str:
    """A command's line in its group's ``--help``: its ``short_help``, else the first sentence of
    its help, whole (click would cut it at the terminal's width, mid-sentence)."""
    if command.short_help:
        return command.short_help
    first = " ".join(inspect.cleandoc(command.help or "").split("\n\n")[0].split())
    found = re.match(r"(.+?[^.][.!?])(?:\s|$)", first)  # "NAME..." ends no sentence
    return found.group(1) if found else first


class SummaryGroup(click.Group):
    """A group listing its commands with whole first sentences (wrapped, not cut)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def index_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """CLI index names are plain names (the library also takes paths)."""
    from simsearch.store.home import check_name

    try:
        return check_name(value)
    except SimsearchError as exc:
        raise click.BadParameter(str(exc)) from None


name_argument = click.argument("name", callback=index_name)


def open_index(name: str, index_dir: str | None) -> Index:
    """``Index.open`` of a CLI name; a missing one is reported with the closest name and the
    build command."""
    from simsearch.index import Index
    from simsearch.store.home import require_index

    require_index(name, index_dir)
    return Index.open(name, index_dir=index_dir)


def reader_options(command: Any) -> Any:
    """--format / --text-field / --id-field / --split, shared by build and add."""
    for option in reversed(
        (
            click.option(
                "--format",
                "fmt",
                type=click.Choice(FORMATS),
                default="auto",
                show_default=True,
                help="How to read the sources: auto (by suffix: .txt .md .csv .tsv .jsonl "
                ".parquet), or one format for all; standard input is txt unless given.",
            ),
            click.option(
                "--text-field", multiple=True, help="Column/field holding the text; repeat to join."
            ),
            click.option("--id-field", help="Column/field holding the document id [default: derived]."),
            click.option(
                "--split",
                type=click.Choice(SPLITS),
                default="none",
                show_default=True,
                help="Make several documents of each text: one per line, paragraph (blank-line "
                "separated) or sentence (ids get #1, #2, ...); none keeps each text whole "
                "(a .txt line is one document).",
            ),
        )
    ):
        command = option(command)
    return command


# click.ParamType takes type arguments only in recent click (not 8.1, which setup.cfg allows).
class _MinScore(click.ParamType):  # type: ignore[type-arg]
    """A cosine threshold: a finite number from -1 to 1 (click's FloatRange lets NaN through)."""

    name = "SCORE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or not -1.0 <= number <= 1.0:
            self.fail(f"{value!r} is not a finite number from -1 to 1 (cosine scores lie there)", param, ctx)
        return number


MIN_SCORE = _MinScore()


def lines_file_option(flag: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A file of one entry per line: a path, a FIFO (process substitution) or - for stdin.

    Opened by the library, not by click, so that a closed stdin is a one-line error.
    """
    return click.option(flag, type=click.Path(exists=True, dir_okay=False, allow_dash=True), help=help)


# The encoder options of `build` and `eval`: defined once.
model_option = click.option(
    "--model",
    default=None,
    help="Hugging Face id or local directory [default: sentence-transformers/all-MiniLM-L6-v2, bundled].",
)
device_option = click.option("--device", default="cpu", show_default=True, help="cpu, or cuda when present.")

pooling_option = click.option(
    "--pooling",
    type=click.Choice(POOLING_CHOICES),
    default="auto",
    show_default=True,
    help="How token vectors become one text vector: mean (average), cls (first token), pooler "
    "(the model's trained pooler); auto uses the model's own setting (sentence-transformers "
    "config), else pooler if it has one, else mean.",
)


def ray_option(command: Any) -> Any:
    """``--ray [ADDRESS]``: alone, start a local Ray cluster; ``auto`` or an address joins one."""
    return click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="local",
        default=None,
        metavar="[ADDRESS]",
        help="Run on Ray (needs the ray extra): alone, a local cluster on loopback; 'auto' the one "
        "`ray start` made (or $RAY_ADDRESS); or HOST:PORT of a head. Joined for the whole command. "
        "Give it as --ray=ADDRESS or after the sources.",
    )(command)


index_dir_option = click.option(
    "--index-dir",
    envvar="SIMSEARCH_INDEX_DIR",
    type=click.Path(file_okay=False),
    help="Where indexes live (env SIMSEARCH_INDEX_DIR, default ./indexes).",
)


def interactive() -> bool:
    """Whether progress is shown: only when stderr is a terminal (never in logs or pipes)."""
    return sys.stderr.isatty()


def announce(message: str) -> None:
    """A status line on stderr for people watching (``loading model ...``); nothing otherwise."""
    if interactive():
        click.echo(message, err=True)


class progress_bar:
    """A progress bar on stderr while encoding, only when stderr is a terminal; with ``total``
    (see :func:`simsearch.readers.counting.count_documents`) it shows percent done and time left."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label = label
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not interactive():
            return None
        from tqdm import tqdm

        self.bar = tqdm(desc=self.label, total=self.total or None, unit=" docs", file=sys.stderr, leave=False)
        return self.bar.update

    def __exit__(self, *exc_info: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def analyzer_option(default: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--analyzer``: the lexical (BM25) analyzer of a build or a ``reindex-lexical``."""
    from simsearch.store.lexical.analyzer import CHOICES

    what = (
        "[default: auto]"
        if default == "auto"
        else "[default: the index's own; auto for an index without a lexical part]"
    )
    return click.option(
        "--analyzer",
        type=click.Choice(CHOICES),
        default=default,
        help="Lexical analyzer: standard (words + CJK character bigrams), korean (those plus "
        "Korean morphemes; needs the korean extra), auto (korean when that extra is installed "
        f"and the first 1,000 documents hold Hangul) {what}.",
    )
