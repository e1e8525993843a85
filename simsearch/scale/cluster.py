"""Connecting to Ray: an existing cluster (``auto`` or an address) or a local one started here."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator

from simsearch.errors import SimsearchError, install_hint

LOCAL = "local"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's single-node switch; "0": loopback only
log = logging.getLogger("simsearch")


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise SimsearchError(f"--ray needs Ray: {install_hint('ray')}") from None
    return ray


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected: reuse a running session, else join ``address`` (``auto``, ``host:port``,
    ``ray://...``) or start a local cluster (``None`` / ``local``), shut down again afterwards.

    A local cluster listens on loopback only (see :func:`loopback_only`)."""
    target = None if address in (None, "", LOCAL) else address
    if target is None:
        loopback_only()
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a build
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        ray.init(address=target, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {target!r}" if target else "a local Ray cluster"
        raise SimsearchError(
            f"cannot connect to {where}: {first_line(exc)}; check --ray ADDRESS "
            "(auto: the cluster `ray start` made; none: start a local one)"
        ) from None
    if target is None:
        _warn_unless_loopback(ray)
    try:
        yield ray
    finally:
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
    host = str(ray.get_runtime_context().gcs_address).rpartition(":")[0].strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "warning: the local Ray cluster listens on %s, not on loopback only (Ray was imported "
            "before simsearch started it); set %s=0 before importing ray to keep it local",
            host,
            LOOPBACK_ENV,
        )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
