"""Connecting to Ray: an existing cluster (``auto`` or an address) or a local one started here.

:func:`connect` joins (or starts) one cluster for the life of the process: a server, a notebook
and a build all keep the connection they made, and it is shut down once, at exit. Ray allows
one cluster per process, so asking for another one afterwards is an error, not a silent switch.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import socket
import sys
import threading
from typing import Any, Iterator

from simsearch.errors import SimsearchError, install_hint

LOCAL = "local"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's single-node switch; "0": loopback only
REACH_TIMEOUT = 5.0  # seconds to wait for a cluster's head to accept a connection
log = logging.getLogger("simsearch")

_lock = threading.Lock()
_shutdown_registered = False
_head_lost = False
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise SimsearchError(f"--ray needs Ray: {install_hint('ray')}") from None
    return ray


def connect(address: str | None) -> Any:
    """Ray, connected for the life of this process; returns the ``ray`` module.

    ``None`` / ``"local"`` starts a local cluster listening on loopback only (unless this process
    is already connected: then that connection is used); ``"auto"`` joins the cluster
    ``ray start`` made (``RAY_ADDRESS`` or the newest one on this machine); ``"HOST:PORT"`` joins
    that one. Idempotent: later calls return the same connection. Ray is shut down at exit.
    A cluster that cannot be reached is one :class:`SimsearchError` line within seconds.
    """
    target = None if address in (None, "", LOCAL) else address
    if target is None:
        loopback_only()
    ray = import_ray()
    with _lock:
        if ray.is_initialized():
            _check_same(ray, target)
            return ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
        resolved = _resolve(target)
        if resolved is not None:
            _check_reachable(target or "", resolved)
        _init(ray, resolved if resolved is not None else target)
        _register_shutdown(ray)
    if target is None:
        _warn_unless_loopback(ray)
    return ray


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, connected (:func:`connect`): kept after the block, for the process."""
    yield connect(address)


def head_lost() -> bool:
    """Whether this process saw its cluster's head go away (then Ray calls would wait for it)."""
    return _head_lost


def mark_head_lost() -> None:
    """Record that the head went away (:mod:`simsearch.scale.head` watches it): from now on
    nothing waits for it, not even the shutdown at exit."""
    global _head_lost
    _head_lost = True


def gcs_address(ray: Any) -> str:
    """``host:port`` of the head's GCS this process is connected to."""
    return str(ray.get_runtime_context().gcs_address)


def head_reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether the head at ``host:port`` accepts a TCP connection (its GCS is listening)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def close_source(items: Any) -> None:
    """Close a generator (a Ray Data batch iterator) now: its executor shuts down and the encoder
    actors give their CPUs back. Left to the garbage collector, a failed build's traceback (kept
    by whoever holds the error) keeps them reserved, and the next Ray call in this process waits."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


def _resolve(target: str | None) -> str | None:
    """``host:port`` of the head ``target`` names (``auto``: Ray's own lookup), or ``None`` for a
    local cluster and for addresses Ray resolves itself (``ray://``)."""
    if target is None or target.startswith("ray://"):
        return None
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # another Ray layout: let ray.init resolve it
        return None if target == "auto" else target
    try:
        resolved = canonicalize_bootstrap_address(target)
    except (ConnectionError, ValueError) as exc:
        raise SimsearchError(
            f"cannot connect to the Ray cluster at {target!r}: {first_line(exc)}; start one with "
            "`ray start --head`, or give --ray HOST:PORT (alone, --ray starts a local one)"
        ) from None
    return None if resolved is None else str(resolved)


def _check_reachable(target: str, resolved: str) -> None:
    # ray.init retries an unreachable head for about two minutes, printing core-worker warnings
    if not head_reachable(resolved, REACH_TIMEOUT):
        named = f"{target!r} ({resolved})" if target != resolved else repr(resolved)
        raise SimsearchError(
            f"cannot connect to the Ray cluster at {named}: nothing answers there within "
            f"{REACH_TIMEOUT:g} s; check that `ray start --head` runs there and the address and port"
        )


def _init(ray: Any, address: str | None) -> None:
    # the console stays simsearch's: workers' output and Ray's Python logging go to Ray's log
    # files under the session directory, not to this process's stderr
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise SimsearchError(
            f"cannot connect to {where}: {first_line(exc)}; check --ray ADDRESS "
            "(auto: the cluster `ray start` made; alone: start a local one)"
        ) from None


def _check_same(ray: Any, target: str | None) -> None:
    if target in (None, "auto") or target.startswith("ray://"):
        return  # whatever this process is connected to is "the running one"
    current = gcs_address(ray)
    if _same_address(current, target):
        return
    raise SimsearchError(
        f"this process is already connected to the Ray cluster at {current}, not {target}; "
        "Ray joins one cluster per process: use a new process for the other one"
    )


def _same_address(a: str, b: str) -> bool:
    def canon(address: str) -> tuple[str, str]:
        host, _, port = address.rpartition(":")
        try:
            host = socket.gethostbyname(host.strip("[]"))
        except OSError:
            pass
        return host, port

    return canon(a) == canon(b)


def _register_shutdown(ray: Any) -> None:
    global _shutdown_registered
    if not _shutdown_registered:
        atexit.register(_shutdown, ray)
        _shutdown_registered = True


def _shutdown(ray: Any) -> None:
    with contextlib.suppress(Exception):
        if ray.is_initialized() and not _head_lost:  # with the head gone, shutdown waits for it
            ray.shutdown()


def loopback_only() -> None:
    """Make the local cluster this process starts listen on 127.0.0.1 only.

    Ray binds its servers (GCS, raylet, object manager, workers) to the node's IP, which it takes
    to be the machine's network address (measured with Ray 2.60: ``ray.init()`` listened on every
    interface, and ``_node_ip_address="127.0.0.1"`` is turned back into the network address).
    Ray's single-node mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the default on macOS and
    Windows) uses loopback instead. Ray reads it when first imported, so this must run before
    that; a value the user set is kept.
    """
    if "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")


def _warn_unless_loopback(ray: Any) -> None:
    host = gcs_address(ray).rpartition(":")[0].strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "warning: the local Ray cluster listens on %s, not on loopback only (Ray was imported "
            "before simsearch started it); set %s=0 before importing ray to keep it local",
            host,
            LOOPBACK_ENV,
        )


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, without terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def cause_line(exc: BaseException) -> str:
    """One line for an error from a Ray task: its innermost cause's message, without Ray's
    remote traceback, its "ray::Task (pid=..., ip=...)" header and colour codes."""
    current = exc
    for _ in range(10):
        cause = getattr(current, "cause", None)
        inner = cause if isinstance(cause, BaseException) else current.__cause__
        if inner is None or inner is current:
            break
        current = inner
    text = first_line(current)
    return text if current is exc or type(current).__name__ in text else f"{type(current).__name__}: {text}"


def unwrap(exc: BaseException) -> BaseException:
    """The simsearch error inside a Ray task error, if there is one (it carries the user's message)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        cause = getattr(current, "cause", None)  # a Ray task error: the exception the task raised
        if isinstance(current, SimsearchError) and not isinstance(cause, BaseException):
            return current  # (Ray's task errors are also instances of the cause's class: look inside)
        current = cause if isinstance(cause, BaseException) else current.__cause__
        seen += 1
    return exc
