"""Watching a Ray cluster's head (its GCS) while simsearch uses the cluster.

Without a watch, a process that loses the head hangs in Ray until Ray ends it (after 60 s, with
no message of simsearch's). A build consumes Ray's batches through :func:`watch_head`, which
raises :class:`HeadLostError` once the head has been silent for a grace period; a server runs a
:class:`HeadMonitor` thread that reports the loss once. Either marks the process's cluster as lost
(:func:`simsearch.scale.cluster.head_lost`), so that nothing waits on the head at exit.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from simsearch.errors import SimsearchError
from simsearch.scale.cluster import close_source, gcs_address, head_reachable, mark_head_lost

HEAD_GRACE = 10.0  # seconds the head may not answer before a build gives up (Ray's own limit: 60)
T = TypeVar("T")


class HeadLostError(SimsearchError):
    """The Ray cluster's head (its GCS) stopped answering while simsearch was using it."""


def watch_head(ray: Any, items: Iterator[T], *, grace: float = HEAD_GRACE, poll: float = 1.0) -> Iterator[T]:
    """``items``, taken in a helper thread while this process checks that the cluster's head still
    accepts connections: when it has not for ``grace`` seconds, :class:`HeadLostError`.

    Without it a process that loses the head hangs in Ray until Ray ends it (after 60 s, with no
    message of simsearch's); with it the caller can clean up and say what happened. The helper
    thread, stuck in Ray, is left behind (a daemon): Ray ends the process later anyway.
    """
    address = gcs_address(ray)
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, handoff, stop), name="ray-batches", daemon=True)
    thread.start()
    silent_since: float | None = None
    try:
        while True:
            try:
                kind, value = handoff.get(timeout=poll)
            except queue.Empty:
                if head_reachable(address, timeout=poll):
                    silent_since = None
                    continue
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since >= grace:
                    mark_head_lost()
                    raise HeadLostError(f"the Ray cluster's head ({address}) went away") from None
                continue
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()


class HeadMonitor:
    """Watches a cluster's head from a daemon thread, for a process that serves from the cluster
    (:func:`simsearch.scale.searcher.watch_cluster`; a build watches with :func:`watch_head`).

    ``state`` is ``"connected"`` or ``"lost"`` (for a health endpoint); when the head has not
    accepted a connection for ``grace`` seconds, ``on_lost`` is called once with a one-line
    message and :func:`~simsearch.scale.cluster.head_lost` turns true. (Ray itself ends a process that lost its head
    after 60 s without a word of simsearch's.)
    """

    def __init__(
        self,
        address: str,
        on_lost: Callable[[str], None],
        *,
        grace: float = HEAD_GRACE,
        poll: float = 1.0,
    ) -> None:
        self.address, self.grace, self.poll = address, grace, poll
        self.on_lost = on_lost
        self.state = "connected"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-head-monitor", daemon=True)

    def start(self) -> HeadMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        silent_since: float | None = None
        while not self._stop.wait(self.poll):
            if head_reachable(self.address, timeout=self.poll):
                silent_since = None
                continue
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since >= self.grace:
                self.state = "lost"
                mark_head_lost()
                self.on_lost(
                    f"the Ray cluster's head ({self.address}) went away: no answer for {self.grace:g} s"
                )
                return


def _produce(items: Iterator[Any], handoff: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put(("item", item)):
                return
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
        put(("error", exc))
        return
    finally:  # a consumer that stopped early: close the source here, in the thread that ran it
        close_source(items)
    put(("end", None))
