"""Search on Ray: shard actors answer like the local index; a killed actor gives a clear error
(HTTP 503) to the queries it was answering and is restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from simsearch import Document, Index, ShardUnavailableError
from simsearch.scale.serve import RayIndex
from tests.server.helpers import call, start_server

TEXTS = [
    "the cat sat on the mat",
    "keep bread fresh",
    "the dog is good",
    "a fast search engine",
    "서울 지하철은 편리하다",
    "how to keep the dog",
    "stale bread is bad",
    "slow query of long word",
]


@pytest.fixture(scope="module")
def encoder(tiny_model: str):
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(tiny_model)


@pytest.fixture
def built(index_dir: Path, encoder) -> Path:
    docs = [Document(f"d{i}", f"{TEXTS[i % len(TEXTS)]} {i}", {"i": i}) for i in range(30)]
    return Index.build(docs, "sh", encoder, index_dir=index_dir, shards=3).path


def shard_actor_pids() -> set[int]:
    """Ray names its worker processes after the actor class (``ray::ShardActor...``)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "ray::ShardActor" in line}


def same_hits(a, b) -> None:
    assert [(h.id, h.rank, h.text, h.metadata) for h in a] == [(h.id, h.rank, h.text, h.metadata) for h in b]
    assert all(abs(x.score - y.score) <= 1e-6 for x, y in zip(a, b))


def close_to(got: list[dict], want) -> None:
    """The server embeds queries with its ONNX export, the test with torch: scores agree to ~1e-6,
    so near-ties of the tiny random model may swap; scores, and the best hit, must agree."""
    assert len(got) == len(want) and got[0]["id"] == want[0].id
    assert all(abs(g["score"] - w.score) <= 1e-4 for g, w in zip(got, want))


def test_ray_index_searches_writes_and_recovers(ray_cluster, built: Path, encoder) -> None:
    local = Index.open(built, encoder=encoder)
    remote = Index.open(built, encoder=encoder, ray="auto")
    assert isinstance(remote, RayIndex) and remote.shards == 3 and len(remote) == 30
    for query in ("bread", "the cat sat", "서울"):
        same_hits(remote.search(query, k=7), local.search(query, k=7, mode="dense"))
    stats = remote.add([Document("new", "a brand new engine", {})])
    assert stats.added == 1 and len(remote) == 31
    same_hits(
        remote.search("brand new engine", k=5),
        Index.open(built, encoder=encoder).search("brand new engine", k=5, mode="dense"),
    )
    assert remote.delete(["new"]).deleted == 1 and len(remote) == 30

    victim = remote.actors[1]
    old_pid = ray_cluster.get(victim.pid.remote())
    os.kill(old_pid, signal.SIGKILL)
    outcomes, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            hits = remote.search("bread", k=7)
        except ShardUnavailableError as exc:  # a query in flight when the actor died
            assert "unavailable" in str(exc) and "retry" in str(exc)
            outcomes.append("503")
            time.sleep(0.2)
            continue
        same_hits(hits, local.search("bread", k=7, mode="dense"))
        outcomes.append("ok")
        break
    assert outcomes[-1] == "ok", outcomes
    assert ray_cluster.get(victim.pid.remote()) != old_pid  # restarted by Ray, same handle

    gone = Index.open(built, encoder=encoder, ray="auto")
    ray_cluster.kill(gone.actors[2], no_restart=True)  # dead for good: every query is refused clearly
    with pytest.raises(ShardUnavailableError, match=r"shard 2 is unavailable"):
        gone.search("bread", k=3)
    remote.close()


def test_serve_ray_over_http(ray_cluster, built: Path, index_dir: Path, tmp_path: Path, encoder) -> None:
    before = shard_actor_pids()
    # the server starts its own local cluster (no address to give: nothing leaves loopback)
    server = start_server(index_dir, ["sh"], "--ray", log=tmp_path / "serve.log", timeout=300)
    try:
        url = f"{server.url}/indexes/sh/search?" + urllib.parse.urlencode({"query": "bread", "k": 5})
        first = call(url)
        assert first.status == 200, first.body
        want = Index.open(built, encoder=encoder).search("bread", k=5, mode="dense")
        close_to(first.json()["hits"], want)
        mine = shard_actor_pids() - before
        assert len(mine) == 3, mine
        os.kill(sorted(mine)[0], signal.SIGKILL)
        statuses, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = call(url)
            statuses.append(answer.status)
            if answer.status == 200:
                close_to(answer.json()["hits"], want)
                break
            assert answer.status == 503 and "unavailable" in answer.json()["error"], answer.body
            time.sleep(0.2)
        assert statuses[-1] == 200, statuses
    finally:
        assert server.stop() == 0, server.stderr()
