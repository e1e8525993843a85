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
from simsearch.scale.replicas import ShardActor
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
