"""Search on Ray: shard actors answer like the local index; a killed actor gives a clear error
(HTTP 503) to the queries it was answering and is replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from simsearch import Document, Index, QueryError, ShardUnavailableError
from simsearch.scale.searcher import RaySearcher
from simsearch.scale.cluster import LOOPBACK_ENV
from tests.scale.helpers import is_loopback, listening_addresses
from tests.scale.multinode import descendants
from tests.server.helpers import call, server_env, start_server

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
    docs = [
        Document(f"d{i}", f"{TEXTS[i % len(TEXTS)]} {i}", {"i": i, "kind": ["even", "odd"][i % 2]})
        for i in range(30)
    ]
    return Index.build(docs, "sh", encoder, index_dir=index_dir, shards=3).path


def shard_actor_pids() -> set[int]:
    """Ray names its worker processes after the actor class (``ray::ShardActor...``)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "ray::ShardActor" in line}


def same_hits(a, b) -> None:
    assert [(h.id, h.rank, h.text, h.metadata) for h in a] == [(h.id, h.rank, h.text, h.metadata) for h in b]
    for x, y in zip(a, b):
        assert abs(x.score - y.score) <= 1e-6
        assert (x.cosine is None) == (y.cosine is None) and (x.bm25 is None) == (y.bm25 is None)
        assert abs((x.cosine or 0) - (y.cosine or 0)) <= 1e-6 and abs((x.bm25 or 0) - (y.bm25 or 0)) <= 1e-6


FILTER = {"i": {">=": 10}, "kind": {"in": ["even"]}}


def close_to(got: list[dict], want) -> None:
    """The server embeds queries with its ONNX export, the test with torch: cosines agree to ~1e-6
    so only hits whose scores lie that close may swap places; every other position holds the same
    document (the ranking itself is the same in every topology)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert abs(g["score"] - w.score) <= 1e-4
        assert g["id"] in {x.id for x in want if abs(x.score - w.score) <= 1e-4}, (g, w)


def test_ray_index_answers_like_the_local_sharded_index(ray_cluster, built: Path, encoder) -> None:
    """Every mode (the default: hybrid), with and without a filter, batches, min_score and
    search_vectors: the same hits, scores and per-side scores as the shards searched locally."""
    local = Index.open(built, encoder=encoder)
    remote = Index.open(built, encoder=encoder, ray="auto")
    queries = ["bread", "the cat sat", "서울 지하철", "stale bread 7", "zzz nothing matches"]
    try:
        default = local.search("bread", k=10)  # hybrid: BM25 and cosine both play
        assert remote.manifest["lexical"] and any(
            h.bm25 is not None and h.cosine is not None for h in default
        )
        for mode in (None, "dense", "lexical", "hybrid"):
            for where in (None, FILTER):
                want = local.search(queries, k=7, mode=mode, where=where)
                got = remote.search(queries, k=7, mode=mode, where=where)
                assert len(got) == len(queries) and any(got), (mode, where)
                for a, b in zip(got, want):
                    same_hits(a, b)
                if where:
                    assert all(
                        h.metadata["kind"] == "even" and h.metadata["i"] >= 10 for row in got for h in row
                    )
        same_hits(remote.search("bread", k=30, min_score=0.1), local.search("bread", k=30, min_score=0.1))
        vectors = encoder.encode(queries)
        for got_row, want_row in zip(
            remote.search_vectors(vectors, 5, where=FILTER), local.search_vectors(vectors, 5, where=FILTER)
        ):
            same_hits(got_row, want_row)
        with pytest.raises(QueryError) as refused:  # the actors' own one-line error, as locally
            remote.search("bread", where={"i": {"~": 3}})
        with pytest.raises(QueryError) as local_refused:
            local.search("bread", where={"i": {"~": 3}})
        assert str(refused.value) == str(local_refused.value) and "\n" not in str(refused.value)
        with pytest.raises(QueryError, match="min_score"):
            remote.search("bread", mode="lexical", min_score=0.5)
    finally:
        remote.close()


def test_ray_index_searches_writes_and_recovers(ray_cluster, built: Path, encoder) -> None:
    local = Index.open(built, encoder=encoder)
    remote = Index.open(built, encoder=encoder, ray="auto")
    assert isinstance(remote.searcher, RaySearcher) and remote.shards == 3 and len(remote) == 30
    for query in ("bread", "the cat sat", "서울"):
        same_hits(remote.search(query, k=7), local.search(query, k=7))
    stats = remote.add([Document("new", "a brand new engine", {})])
    assert stats.added == 1 and len(remote) == 31
    same_hits(
        remote.search("brand new engine", k=5),
        Index.open(built, encoder=encoder).search("brand new engine", k=5),
    )
    assert remote.delete(["new"]).deleted == 1 and len(remote) == 30

    victim = remote.searcher.actors[1]
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
        same_hits(hits, local.search("bread", k=7))
        outcomes.append("ok")
        break
    assert outcomes[-1] == "ok", outcomes
    assert ray_cluster.get(remote.searcher.actors[1].pid.remote()) != old_pid  # replaced by simsearch

    remote.close()

    gone = Index.open(built, encoder=encoder, ray="auto")
    try:
        ray_cluster.kill(
            gone.searcher.actors[2], no_restart=True
        )  # dead for good: every query is refused clearly
        with pytest.raises(ShardUnavailableError, match=r"shard 2 is unavailable"):
            gone.search("bread", k=3)
    finally:
        # Closed, not left to garbage collection: the replacement simsearch starts for the dead
        # replica holds the shard group, so its actors (and the replacement) outlive the handle.
        gone.close()


def test_serve_ray_over_http(ray_cluster, built: Path, index_dir: Path, tmp_path: Path, encoder) -> None:
    before = shard_actor_pids()
    # the server starts its own local cluster (no address to give: nothing leaves loopback), with
    # no loopback setting inherited from this test session: simsearch must ask for it itself
    env = {key: value for key, value in server_env().items() if key != LOOPBACK_ENV}
    server = start_server(index_dir, ["sh"], "--ray", log=tmp_path / "serve.log", env=env, timeout=300)
    try:
        listening = listening_addresses(server.process.pid)
        assert len(listening) >= 3 and all(map(is_loopback, listening)), listening  # GCS, raylet, workers
        url = f"{server.url}/indexes/sh/search?" + urllib.parse.urlencode({"query": "bread", "k": 5})
        first = call(url)
        assert first.status == 200, first.body
        local = Index.open(built, encoder=encoder)
        want = local.search("bread", k=5)
        close_to(first.json()["hits"], want)
        for mode in ("dense", "lexical", "hybrid"):  # every mode and a filter, GET and POST
            params = {"query": "stale bread", "k": 6, "mode": mode, "where": json.dumps(FILTER)}
            got = call(f"{server.url}/indexes/sh/search?" + urllib.parse.urlencode(params))
            assert got.status == 200, got.body
            close_to(got.json()["hits"], local.search("stale bread", k=6, mode=mode, where=FILTER))
            posted = call(
                f"{server.url}/indexes/sh/search",
                method="POST",
                body={"queries": ["stale bread", "the cat"], "k": 4, "mode": mode},
            )
            assert posted.status == 200, posted.body
            for hits, query in zip(posted.json()["results"], ["stale bread", "the cat"]):
                close_to(hits["hits"], local.search(query, k=4, mode=mode))
        bad = call(
            f"{server.url}/indexes/sh/search?"
            + urllib.parse.urlencode({"query": "x", "where": '{"i": {"~": 1}}'})
        )
        assert bad.status in (400, 422) and "\n" not in bad.json()["error"], bad.body
        # the server started its own cluster: its actors are below it (other Ray users' are not)
        mine = (shard_actor_pids() - before) & descendants(server.process.pid)
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
