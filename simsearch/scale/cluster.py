"""Connecting to Ray: an existing cluster (``auto`` or an address) or a local one started here."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from simsearch.errors import SimsearchError

LOCAL = "local"


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise SimsearchError("--ray needs Ray: pip install 'simsearch[ray]'") from None
    return ray


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected: reuse a running session, else join ``address`` (``auto``, ``host:port``,
    ``ray://...``) or start a local cluster (``None`` / ``local``), shut down again afterwards."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a build
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    target = None if address in (None, "", LOCAL) else address
    try:
        ray.init(address=target, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {target!r}" if target else "a local Ray cluster"
        raise SimsearchError(
            f"cannot connect to {where}: {first_line(exc)}; check --ray ADDRESS "
            "(auto: the cluster `ray start` made; none: start a local one)"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unwrap(exc: BaseException) -> BaseException:
    """The simsearch error inside a Ray task error, if there is one (it carries the user's message)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, SimsearchError):
            return current
        current = getattr(current, "cause", None) or current.__cause__
        seen += 1
    return exc
