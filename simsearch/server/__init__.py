"""``simsearch serve``: indexes kept warm behind an HTTP API and a search page.

Needs the ``serve`` extra (FastAPI and uvicorn); importing this package does not load them, nor
the model: :func:`serve` does.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

from simsearch import config as settings
from simsearch.errors import SimsearchError, install_hint

MAX_BODY = 1 << 20  # search requests
MAX_WRITE_BODY = 32 << 20  # document uploads
LOST_GRACE = 2.0  # seconds /health reports a lost Ray head before the server stops


@dataclass(frozen=True)
class ServeConfig:
    """What ``simsearch serve`` was asked for."""

    names: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    index_dir: str | None = None
    allow_writes: bool = False
    token_env: str | None = None
    max_body: int = MAX_BODY
    max_write_body: int = MAX_WRITE_BODY
    ray: str | None = None  # shard actors on this Ray cluster ("local": start one)
    replicas: int = 1  # with ray: actors per shard
    deadline: float = 2.0  # with ray: seconds a replica has per call before another is asked
    allow_partial: bool = False  # with ray: answer without a shard that has no healthy replica
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides this machine's own


def serve(config: ServeConfig, announce: Callable[[str], None] = print) -> None:
    """Open the indexes and their models, then answer HTTP until SIGTERM or Ctrl-C.

    Everything that can fail at startup (token variable, port, missing or damaged index, model)
    fails here with a :class:`SimsearchError`, before the first request is accepted.
    """
    # torch and FAISS each run an OpenMP team, here on different threads (encoder, requests);
    # with the default spin-waiting their idle workers starve each other's busy ones and a
    # 20 ms search took 1.5 s on 2 cores. Set before either library loads; the user may override.
    settings.passive_openmp()
    uvicorn = _import_stack()
    from simsearch.server.app import create_app
    from simsearch.server.guard import Guard
    from simsearch.server.state import RayServing, Served

    token = read_token(config.token_env)
    if config.allow_writes:
        check_writes_guarded(config.host, token is not None)
        _check_writes_available()
    sock = bind(config.host, config.port)
    try:
        serving = RayServing(config.replicas, config.deadline, config.allow_partial)
        served = Served(config.names, config.index_dir, ray=config.ray, serving=serving)
    except BaseException:
        sock.close()
        raise
    from simsearch.server import protocol

    app = Guard(
        create_app(served, allow_writes=config.allow_writes, token=token),
        max_body=config.max_body,
        max_write_body=config.max_write_body,
        hosts=allowed_hosts(config),
        any_address=not is_loopback(config.host),
    )
    for line in startup_lines(config, served, sock, token):
        announce(line)
    protocol.use_json_unavailable()
    server = _server_class(uvicorn)(
        uvicorn.Config(
            app,
            lifespan="on",
            log_level="info",
            access_log=False,
            server_header=False,
            http=protocol.GuardedH11Protocol,
            timeout_keep_alive=protocol.KEEP_ALIVE_TIMEOUT,
            h11_max_incomplete_event_size=protocol.MAX_HEAD_BYTES,
            limit_concurrency=128,
            timeout_graceful_shutdown=10,
        )
    )
    if config.ray is not None:
        _watch_head(served, server)
    server.run(sockets=[sock])
    if served.cluster_lost:
        from simsearch.scale.searcher import disconnect

        disconnect()
        raise SimsearchError(f"{served.cluster_lost}; the server stopped")


def _watch_head(served: Any, server: Any) -> None:
    """A lost Ray head: said on /health, logged once, then the server stops (exit 1)."""
    import logging
    import threading

    from simsearch.scale.searcher import watch_cluster

    def lost(message: str) -> None:
        served.cluster_lost = message
        logging.getLogger("simsearch.serve").error("%s; stopping the server", message)
        # /health says so for a moment before the port closes (monitors polling it see why)
        threading.Timer(LOST_GRACE, lambda: setattr(server, "should_exit", True)).start()

    watch_cluster(lost)


def check_writes_guarded(host: str, has_token: bool) -> None:
    """Writes reachable from other machines need a token: refuse to start otherwise."""
    if not has_token and not is_loopback(host):
        raise SimsearchError(
            f"--allow-writes on {host}, which other machines can reach, needs a token: "
            "add --token-env VAR (with the token in $VAR), or serve on 127.0.0.1"
        )


def allowed_hosts(config: ServeConfig) -> frozenset[str]:
    """Host header names the server answers to: loopback names, the --host address, this
    machine's names when listening beyond loopback, and --allow-host names. Any other name is a
    DNS-rebinding attempt (a foreign name resolving to this address) and gets a 400."""
    from simsearch.server.guard import LOOPBACK_NAMES

    names = set(LOOPBACK_NAMES) | {config.host.strip("[]").lower()}
    if not is_loopback(config.host):
        for name in (socket.gethostname(), socket.getfqdn()):
            names.add(name.lower())
    names.update(name.strip().lower() for name in config.allowed_hosts)
    return frozenset(names)


def _server_class(uvicorn: Any) -> Any:
    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM or Ctrl-C that shut it down cleanly ends with exit 0."""

        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            # uvicorn would re-raise the signal once shut down, so the process would die of it
            # (status -15) after a clean stop; the stop was asked for and went well: exit 0.
            getattr(self, "_captured_signals", []).clear()

    return Server


def _import_stack() -> Any:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ModuleNotFoundError as exc:
        raise SimsearchError(
            f"`simsearch serve` needs FastAPI and uvicorn ({exc.name} is missing): {install_hint('serve')}"
        ) from None
    return uvicorn


def _check_writes_available() -> None:
    from simsearch.index import Index

    if not (hasattr(Index, "add") and hasattr(Index, "delete")):
        raise SimsearchError(
            "--allow-writes needs Index.add and Index.delete, which this simsearch "
            "lacks; upgrade simsearch or serve read-only"
        )


def read_token(variable: str | None) -> str | None:
    if variable is None:
        return None
    token = os.environ.get(variable, "")
    if not token.strip():
        raise SimsearchError(
            f"--token-env {variable}: the environment variable {variable} is not set "
            "or empty; export the token that clients must send"
        )
    return token.strip()


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket, so a taken port fails at once with a clear message."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise SimsearchError(
            f"cannot listen on {host!r}: {exc}; give --host an address of this machine"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise SimsearchError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port (or stop what uses it)"
        ) from None
    return sock


def startup_lines(config: ServeConfig, served: Any, sock: socket.socket, token: str | None) -> list[str]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    lines = [
        f"serving {name} ({int(target.manifest['count'])} documents, {target.manifest['model']})"
        for name, target in served.indexes.items()
    ]
    writes = (
        "writes enabled" + (f", bearer token from ${config.token_env}" if token else ", no token")
        if config.allow_writes
        else "read-only"
    )
    lines.append(f"search page and API at http://{shown}:{port}/ ({writes}); stop with Ctrl-C or SIGTERM")
    lines.append(
        f"OpenAI-compatible embeddings at http://{shown}:{port}/v1"
        + (f" (bearer token from ${config.token_env})" if token else "")
    )
    if importlib.util.find_spec("mcp") is not None:  # the route exists with simsearch[mcp] (mcp_http.py)
        lines.append(f"MCP (streamable HTTP) at http://{shown}:{port}/mcp")
    return lines
