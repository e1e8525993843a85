"""`serve --ray` on a real two-node cluster started with `ray start` (head 127.0.0.2, worker
127.0.0.3, 1 CPU each, own temp dir and ports): replicas on both nodes, a write while queries run
(no 503, the new document found), the worker node killed (every query still answered), then the
head killed (the server says so on /health, logs one line and exits 1).

Only the processes started here are killed, by process group (never `ray stop`: other Ray
clusters on this machine are not ours)."""

from __future__ import annotations

import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

from simsearch import Document, Index
from tests.scale.multinode import Cluster, node_env, start_cluster
from tests.server.helpers import call, server_env, start_server

HEAD, WORKER = "127.0.0.2", "127.0.0.3"
TEXTS = ["the cat sat on the mat", "keep bread fresh", "stale bread is bad", "a fast search engine"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = start_cluster([HEAD, WORKER], [tmp_path, tmp_path])
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
