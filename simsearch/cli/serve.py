"""``simsearch serve``: the HTTP API and the search page over indexes (the ``serve`` extra)."""

from __future__ import annotations

import click

from simsearch.cli.options import index_dir_option, ray_option
from simsearch.errors import SimsearchError


@click.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; other than loopback only when you mean it.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="TCP port (0: any free one).",
)
@index_dir_option
@click.option("--allow-writes", is_flag=True, help="Enable POST and DELETE /indexes/NAME/documents.")
@click.option(
    "--token-env",
    metavar="VAR",
    help="Writes and the OpenAI-compatible /v1 routes then need "
    "'Authorization: Bearer <token>', the token held by $VAR "
    "(required with --allow-writes on a --host other than loopback).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests whose Host header is NAME (repeatable; '*' for any). "
    "Loopback names, IP addresses and this machine's names are always accepted.",
)
@ray_option
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --ray: shard actors per shard, on different nodes where the cluster has them.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="With --ray: seconds a replica has to answer before the call goes to another one "
    "(and the late one is replaced).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help='With --ray: answer without a shard that has no healthy replica ("partial": true and the '
    "missing shards named) instead of 503.",
)
def serve(
    names: tuple[str, ...],
    host: str,
    port: int,
    index_dir: str | None,
    allow_writes: bool,
    token_env: str | None,
    allow_hosts: tuple[str, ...],
    ray_address: str | None,
    replicas: int,
    deadline: float,
    allow_partial: bool,
) -> None:
    """Serve indexes NAME... over HTTP: a JSON API and a search page at /.

    \b
      simsearch serve notes scifact --port 8000
      curl 'http://127.0.0.1:8000/indexes/notes/search?query=fresh+bread&k=3'

    The indexes' models also answer OpenAI-style at /v1/embeddings and /v1/models.

    \b
      simsearch serve big --ray=auto --replicas 2 --deadline 1.5
    """
    from simsearch.server import ServeConfig, check_writes_guarded
    from simsearch.server import serve as run_server

    if ray_address is None and (replicas != 1 or allow_partial or deadline != 2.0):
        raise click.UsageError("--replicas, --deadline and --allow-partial need --ray")
    if allow_writes:
        try:
            check_writes_guarded(host, token_env is not None)
        except SimsearchError as exc:
            raise click.UsageError(str(exc)) from None
    run_server(
        ServeConfig(
            names,
            host,
            port,
            index_dir,
            allow_writes,
            token_env,
            ray=ray_address,
            allowed_hosts=allow_hosts,
            replicas=replicas,
            deadline=deadline,
            allow_partial=allow_partial,
        ),
        announce=lambda line: click.echo(line, err=True),
    )
