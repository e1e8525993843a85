"""scale.cluster and scale.head without a cluster: the head monitor, one-line remote errors,
address checks."""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest

from simsearch.errors import SimsearchError
from simsearch.scale import cluster
from simsearch.scale.cluster import cause_line, first_line, head_reachable
from simsearch.scale.head import HeadLostError, HeadMonitor, watch_head


@pytest.fixture(autouse=True)
def _head_lost_stays_in_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests watch fake heads, which sets the process-wide "head lost" flag; it is put back
    afterwards, or every later Ray close in the session would skip its actors."""
    monkeypatch.setattr(cluster, "_head_lost", False)


def listener() -> tuple[socket.socket, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, f"127.0.0.1:{server.getsockname()[1]}"


def test_head_monitor_reports_a_lost_head_once() -> None:
    server, address = listener()
    said: list[str] = []
    called = threading.Event()

    def lost(message: str) -> None:
        said.append(message)
        called.set()

    monitor = HeadMonitor(address, lost, grace=0.3, poll=0.05).start()
    try:
        assert not called.wait(0.5) and monitor.state == "connected"  # answering: nothing said
        server.close()
        assert called.wait(10)
        assert monitor.state == "lost" and len(said) == 1
        assert said[0].startswith(f"the Ray cluster's head ({address}) went away") and "\n" not in said[0]
    finally:
        monitor.stop()
    assert not head_reachable(address)


class FakeRay:
    def __init__(self, address: str) -> None:
        self.address = address

    def get_runtime_context(self) -> "FakeRay":
        return self

    @property
    def gcs_address(self) -> str:
        return self.address


def test_watch_head_gives_up_on_a_silent_head() -> None:
    server, address = listener()
    stuck = threading.Event()

    def batches() -> Iterator[int]:
        yield 1
        stuck.wait(30)  # Ray waiting for a head that is gone
        yield 2

    got: list[int] = []
    server.close()
    with pytest.raises(HeadLostError, match="went away"):
        for item in watch_head(FakeRay(address), batches(), grace=0.3, poll=0.05):
            got.append(item)
    stuck.set()
    assert got == [1]


def test_watch_head_passes_items_and_errors_through() -> None:
    server, address = listener()
    try:

        def failing() -> Iterator[str]:
            yield "a"
            raise SimsearchError("bad row")

        got: list[str] = []
        with pytest.raises(SimsearchError, match="bad row"):
            for item in watch_head(FakeRay(address), failing(), poll=0.05):
                got.append(item)
        assert got == ["a"]
    finally:
        server.close()


def test_remote_errors_are_one_line_without_colour() -> None:
    class TaskError(Exception):  # how Ray wraps what a task raised
        def __init__(self, text: str, cause: BaseException) -> None:
            super().__init__(text)
            self.cause = cause

    wrapped = TaskError(
        "\x1b[36mray::FlatMap(read_part)()\x1b[39m (pid=1, ip=127.0.0.2)\n  File ...", OSError("disk gone")
    )
    assert cause_line(wrapped) == "OSError: disk gone"
    assert first_line(RuntimeError("\x1b[31mred\x1b[0m line\nmore")) == "red line"
