"""Options shared by the ``simsearch eval`` commands: the Encoder under test, search depth, mode,
analyzer, per-query output and ``--json``. Options shared across command groups are in
:mod:`simsearch.cli.options`."""

from __future__ import annotations

from typing import Any, Callable

import click

from simsearch.cli.options import analyzer_option, device_option, model_option, pooling_option
from simsearch.encode.precision import PRECISIONS
from simsearch.search.request import MODES


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --pooling, --precision, --batch-size, --device: the Encoder being evaluated."""
    for option in reversed(
        (
            model_option,
            pooling_option,
            click.option(
                "--precision",
                type=click.Choice(PRECISIONS),
                default="fp32",
                show_default=True,
                help="Encoder precision, as in `simsearch build --precision`.",
            ),
            click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
            device_option,
        )
    ):
        command = option(command)
    return command


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
top_k_option = click.option(
    "-k",
    "--top-k",
    "k",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Search depth (metrics cut deeper than this are not reported).",
)
per_query_option = click.option(
    "--per-query",
    type=click.Path(dir_okay=False),
    help="Write one JSON line per query with its metrics to this file.",
)
auto_analyzer_option = analyzer_option("auto")
mode_option = click.option(
    "--mode",
    type=click.Choice(MODES),
    default="dense",
    show_default=True,
    help="Search mode: dense (the model alone), lexical (BM25) or hybrid (fused).",
)


def retrieval_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """What every retrieval evaluation takes, in this order: the encoder under test, --top-k,
    --mode, --analyzer, --json and --per-query."""
    for option in (per_query_option, json_option, auto_analyzer_option, mode_option, top_k_option):
        command = option(command)
    return model_options(command)
