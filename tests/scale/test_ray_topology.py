"""On Ray, the same answers as the plain index: random English/Korean corpora with duplicate texts,
every mode, filters on a field only some shards hold, k up to 100 (tests/search/test_topologies.py
checks the local topologies the same way)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from simsearch import Index
from simsearch.errors import UnknownFieldError
from simsearch.scale.searcher import RaySearcher
from tests.fakes import FakeEncoder
from tests.search.test_topologies import WHERES, WORDS, corpus, same


@pytest.mark.parametrize("shards", [None, 3, 8])
def test_ray_answers_like_the_plain_index(ray_cluster, tmp_path: Path, shards: int | None) -> None:
    docs = corpus(11, 300)
    encoder = FakeEncoder()
    plain = Index.build(docs, tmp_path / "plain", encoder, index_type="flat")
    built = Index.build(docs, tmp_path / "on-ray", encoder, index_type="flat", shards=shards)
    built.close()
    remote = Index.open(tmp_path / "on-ray", encoder=encoder, ray="auto")
    try:
        assert isinstance(remote.searcher, RaySearcher)
        rng = random.Random(shards or 1)
        for _ in range(8):
            query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
            k, where = rng.choice([1, 10, 37, 100]), rng.choice(WHERES)
            for mode in ("dense", "lexical", "hybrid"):
                try:
                    want = plain.search(query, k, mode=mode, where=where)
                except UnknownFieldError:
                    with pytest.raises(UnknownFieldError):
                        remote.search(query, k, mode=mode, where=where)
                    continue
                same(remote.search(query, k, mode=mode, where=where), want)
        # the documents themselves, through the driver's own view of the files
        assert sorted(remote.ids()) == sorted(plain.ids())
        wanted = [docs[5].id, "nope", docs[0].id]
        assert remote.get(wanted) == plain.get(wanted)
        ids, vectors = remote.get_vectors(wanted)
        assert ids == [docs[5].id, docs[0].id] and vectors.shape == (2, encoder.dim)
    finally:
        remote.close()
        plain.close()


def test_a_plain_index_on_ray_follows_its_writes(ray_cluster, tmp_path: Path) -> None:
    """A plain index keeps its directory across generations: its actor is restarted by the
    manifest's change, so a write is searched at once (and the actor serves the new file)."""
    from simsearch import Document

    encoder = FakeEncoder()
    Index.build([Document("a", "keep bread fresh", {})], tmp_path / "plain", encoder).close()
    remote = Index.open(tmp_path / "plain", encoder=encoder, ray="auto")
    try:
        before = remote.searcher.actors[0]
        remote.add([Document("b", "a river in the city", {})])
        assert [h.id for h in remote.search("river city", 1, mode="lexical")] == ["b"]
        assert remote.searcher.actors[0] is not before and len(remote) == 2
    finally:
        remote.close()
