"""`serve --ray` on a real two-node cluster started with `ray start` (head 127.0.0.2, worker
127.0.0.3, 1 CPU each, own temp dir and ports): replicas on both nodes, a write while queries run
(no 503, the new document found), the worker node killed (every query still answered), then the
head killed (the server says so on /health, logs one line and exits 1).

Only the processes started here are killed, by process group (never `ray stop`: other Ray
clusters on this machine are not ours)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

from simsearch import Document, Index
from tests.server.helpers import call, server_env, start_server

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
HEAD, WORKER = "127.0.0.2", "127.0.0.3"
TEXTS = ["the cat sat on the mat", "keep bread fresh", "stale bread is bad", "a fast search engine"]


def node_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")
    }
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def free_ports(count: int) -> list[int]:
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        try:
            for port in range(base, base + count):
                for host in (HEAD, WORKER):
                    with socket.socket() as probe:
                        probe.bind((host, port))
        except OSError:
            continue
        return list(range(base, base + count))
    raise RuntimeError("no free block of ports")


class Cluster:
    def __init__(self) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))
        self.groups: list[int] = []  # each `ray start`'s process group: its node's daemons
        self.address = ""
        ports = free_ports(80)
        for number, ip in enumerate((HEAD, WORKER)):
            p = ports[40 * number : 40 * (number + 1)]
            args = [
                RAY, "start", "--node-ip-address", ip, "--num-cpus", "1", "--temp-dir", str(self.temp),
                "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
                "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
                "--metrics-export-port", str(p[4]), "--runtime-env-agent-port", str(p[5]),
                "--min-worker-port", str(p[10]), "--max-worker-port", str(p[39]), "--disable-usage-stats",
            ]  # fmt: skip
            if number == 0:
                self.address = f"{ip}:{p[6]}"
                args += [
                    "--head",
                    "--port",
                    str(p[6]),
                    "--include-dashboard",
                    "false",
                    "--dashboard-port",
                    str(p[7]),
                ]
            else:
                args += ["--address", self.address]
            started = subprocess.Popen(
                args,
                env=node_env(),
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self.groups.append(started.pid)
            out, _ = started.communicate(timeout=120)
            if started.returncode != 0:
                self.close()
                raise RuntimeError(f"ray start failed:\n{out[-3000:]}")

    def kill(self, number: int) -> None:
        try:
            os.killpg(self.groups[number], signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        for number in range(len(self.groups)):
            self.kill(number)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    try:
        yield started
    finally:
        started.close()


def test_serve_with_replicas_survives_a_write_and_a_node_and_reports_a_lost_head(
    cluster: Cluster, index_dir: Path, tmp_path: Path, tiny_model: str
) -> None:
    from simsearch.encode.torch_encoder import Encoder

    encoder = Encoder(tiny_model)
    docs = [Document(f"d{i}", f"{TEXTS[i % len(TEXTS)]} {i}", {"i": i}) for i in range(20)]
    Index.build(docs, "sh", encoder, index_dir=index_dir, shards=2)
    env = {**server_env(), **node_env()}
    options = ("--ray=" + cluster.address, "--replicas", "2", "--deadline", "1.5", "--allow-writes")
    server = start_server(index_dir, ["sh"], *options, log=tmp_path / "serve.log", env=env, timeout=300)
    try:
        health = call(f"{server.url}/health").json()
        shards = health["ray"]["indexes"]["sh"]
        assert [sorted(r["node"] for r in s["replicas"]) for s in shards] == [[HEAD, WORKER]] * 2, health
        info = call(f"{server.url}/indexes/sh").json()
        assert len(info["ray_shards"]) == 2
        url = f"{server.url}/indexes/sh/search?" + urllib.parse.urlencode({"query": "brand new", "k": 3})

        statuses: list[int] = []
        stop = threading.Event()

        def ask() -> None:
            while not stop.is_set():
                statuses.append(call(url).status)

        asking = threading.Thread(target=ask)
        asking.start()
        try:
            added = call(
                f"{server.url}/indexes/sh/documents",
                method="POST",
                body={"documents": [{"id": "new", "text": "a brand new engine"}]},
            )
            assert added.status == 200, added.body
            time.sleep(1.0)
        finally:
            stop.set()
            asking.join()
        assert statuses and set(statuses) == {200}, statuses  # no 503, no gap while shards reload
        after = call(f"{server.url}/health").json()["ray"]["indexes"]["sh"]
        kept = [a for a, b in zip(after, shards) if a["dir"] == b["dir"]]
        assert len(kept) == 1 and kept[0]["replicas"] == next(  # the unchanged shard kept its actors
            b["replicas"] for b in shards if b["dir"] == kept[0]["dir"]
        ), (shards, after)
        assert call(url).json()["hits"][0]["id"] == "new"

        cluster.kill(1)  # the worker node: every shard still has its replica on the head
        for _ in range(6):
            answer = call(url)
            assert answer.status == 200 and answer.json()["hits"][0]["id"] == "new", answer.body
            assert "partial" not in answer.json()

        cluster.kill(0)  # the head: the server cannot answer any more, says so, and stops
        said_lost = False
        deadline = time.monotonic() + 60
        while server.process.poll() is None and time.monotonic() < deadline:
            try:
                health_answer: Any = call(f"{server.url}/health")
                said_lost |= health_answer.status == 503 and health_answer.json()["ray"]["cluster"] == "lost"
            except OSError:
                pass  # closing
            time.sleep(0.3)
        assert server.process.wait(60) == 1, server.stderr()
        said = [line for line in server.stderr().splitlines() if line.startswith("Error: ")]
        assert len(said) == 1 and "head at " + cluster.address + " went away" in said[0], server.stderr()
        assert "Traceback" not in server.stderr(), server.stderr()
        assert said_lost, server.stderr()
    finally:
        server.stop()
