"""Ray replicas and deadlines on the test session's cluster: a paused replica is left for another
within the deadline and replaced; a shard with no healthy replica fails clearly, or is named in a
partial answer; a shard that fits on no node, or files that differ from the committed ones, are
refused in one line."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from simsearch import Document, Index, IndexCorruptError, ShardUnavailableError, SimsearchError
from simsearch.scale import replicas as replica_module
from simsearch.scale.shard_actor import ShardActor
from simsearch.scale.searcher import RaySearcher, allow_partial

TEXTS = ["the cat sat on the mat", "keep bread fresh", "stale bread is bad", "a fast search engine"]


@pytest.fixture(scope="module")
def encoder(tiny_model: str):
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(tiny_model)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    docs = [Document(f"d{i}", f"{TEXTS[i % len(TEXTS)]} {i}", {"i": i}) for i in range(24)]
    return Index.build(docs, tmp_path_factory.mktemp("rep") / "rep", encoder, shards=2).path


def ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_paused_replica_is_passed_over_and_replaced(ray_cluster, built: Path, encoder) -> None:
    want = Index.open(built, encoder=encoder).search(["bread", "the cat"], k=8)
    remote = Index.open(built, encoder=encoder, ray="auto", replicas=2)
    searcher = remote.searcher
    assert isinstance(searcher, RaySearcher)
    searcher.deadline = 1.0
    shards = searcher.placement()
    assert [len(s["replicas"]) for s in shards] == [2, 2]
    assert all(r["state"] == "healthy" for s in shards for r in s["replicas"])
    paused = shards[0]["replicas"][0]["pid"]
    os.kill(paused, signal.SIGSTOP)
    try:
        for _ in range(4):  # round-robin: some of these go to the paused replica first
            got = remote.search(["bread", "the cat"], k=8)
            assert [ids(row) for row in got] == [ids(row) for row in want]  # complete every time
        states = {r["pid"]: r["state"] for r in searcher.placement()[0]["replicas"]}
        assert states.get(paused, "unhealthy") == "unhealthy", states  # never asked again
        assert wait_for(
            lambda: all(
                r["state"] == "healthy" and r["pid"] != paused for r in searcher.placement()[0]["replicas"]
            )
        ), searcher.placement()
        assert [ids(row) for row in remote.search(["bread", "the cat"], k=8)] == [ids(row) for row in want]
    finally:
        try:
            os.kill(paused, signal.SIGCONT)
        except ProcessLookupError:
            pass  # killed by its replacement, as it should be
        remote.close()


def test_no_healthy_replica_fails_or_answers_partially(
    ray_cluster, built: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no replacement here: the point is what a search does while a shard has no replica at all
    monkeypatch.setattr(replica_module.ShardGroup, "_replace", lambda self, old: None)
    local = Index.open(built, encoder=encoder)
    remote = Index.open(built, encoder=encoder, ray="auto")
    searcher = remote.searcher
    assert isinstance(searcher, RaySearcher)
    searcher.deadline = 1.0
    paused = searcher.placement()[1]["replicas"][0]["pid"]
    os.kill(paused, signal.SIGSTOP)
    try:
        with allow_partial() as missing:
            partial = remote.search("bread", k=24)
        assert missing == {1}
        shard0 = set(Index.open(built / searcher.placement()[0]["dir"]).ids())
        assert partial and set(ids(partial)) <= shard0  # the other shard's hits only
        assert set(ids(local.search("bread", k=24))) - shard0  # (the whole index has more)
        assert searcher.placement()[1]["replicas"][0]["state"] == "unhealthy"
        with pytest.raises(ShardUnavailableError, match=r"shard 1 is unavailable") as refused:
            remote.search("bread", k=3)  # not waited on again: refused at once, in one line
        assert "\n" not in str(refused.value)
    finally:
        os.kill(paused, signal.SIGCONT)
        remote.close()


def test_a_shard_that_fits_nowhere_is_named(
    ray_cluster, built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replica_module, "MARGIN", 1 << 50)  # a petabyte per actor
    with pytest.raises(
        SimsearchError, match=r"shard 0 \(shard-[\w.]+\) needs .* more than any node"
    ) as refused:
        RaySearcher.open(built, "auto")
    assert "\n" not in str(refused.value)


def test_a_replica_checks_its_files_against_the_top_manifest(built: Path) -> None:
    shard_dir = next(p for p in sorted(built.iterdir()) if p.is_dir() and (p / "manifest.json").exists())
    with pytest.raises(IndexCorruptError, match="differs from the one the index committed"):
        ShardActor(str(shard_dir), "0" * 64)


def test_http_partial_answer_and_replica_states(
    ray_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP with allow_partial: "partial": true and the missing shard named; /health and
    GET /indexes/NAME show each shard's replicas and their states."""
    from simsearch.server.app import create_app
    from simsearch.server.state import ModelWorker, RayServing, Served, ServedIndex
    from tests.fakes import FakeEncoder
    from tests.server.test_modes import call

    monkeypatch.setattr(replica_module.ShardGroup, "_replace", lambda self, old: None)
    docs = [Document(f"d{i}", f"{TEXTS[i % len(TEXTS)]} {i}", {"i": i}) for i in range(24)]
    Index.build(docs, tmp_path / "sh", FakeEncoder(), shards=2).close()
    worker = ModelWorker(FakeEncoder())
    served = Served.__new__(Served)
    from simsearch.store.manifest import identity_of

    served.ray, served.cluster_lost, served.encoders = "auto", None, {(identity_of(worker), ""): worker}
    serving = RayServing(replicas=1, deadline=1.0, allow_partial=True)
    served.indexes = {"sh": ServedIndex("sh", tmp_path / "sh", worker, "auto", serving)}
    app = create_app(served)
    try:
        status, health = call(app, "GET", "/health")
        assert status == 200 and health["ray"]["cluster"] == "ok", health
        shards = health["ray"]["indexes"]["sh"]
        assert [s["shard"] for s in shards] == [0, 1] and all(len(s["replicas"]) == 1 for s in shards)
        status, complete = call(app, "GET", "/indexes/sh/search", {"query": "bread", "k": 24})
        assert status == 200 and "partial" not in complete and len(complete["hits"]) == 24
        paused = shards[1]["replicas"][0]["pid"]
        os.kill(paused, signal.SIGSTOP)
        try:
            for method, options in (("GET", {"query": ["bread"]}), ("POST", {"queries": ["bread", "cat"]})):
                query = {**options, "k": 24} if method == "GET" else None
                body = {**options, "k": 24} if method == "POST" else None
                status, got = call(app, method, "/indexes/sh/search", query, body)
                assert status == 200 and got["partial"] is True and got["missing_shards"] == [1], got
                hits = got["hits"] if "hits" in got else got["results"][0]["hits"]
                assert 0 < len(hits) < 24
            status, info = call(app, "GET", "/indexes/sh")
            assert status == 200 and info["ray_shards"][1]["replicas"][0]["state"] == "unhealthy", info
        finally:
            os.kill(paused, signal.SIGCONT)
    finally:
        served.close()


def test_replica_options_need_ray() -> None:
    from click.testing import CliRunner

    from simsearch.cli.main import main as cli

    for options in (["--replicas", "2"], ["--allow-partial"], ["--deadline", "1"]):
        result = CliRunner().invoke(cli, ["serve", "docs", *options])
        assert result.exit_code == 2 and "need --ray" in result.output, result.output
    assert CliRunner().invoke(cli, ["serve", "docs", "--ray", "--replicas", "0"]).exit_code == 2
