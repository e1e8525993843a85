"""An index written by an earlier release (tests/fixtures/index-v0.1.0, built by simsearch 0.1.0 at
commit 9411138 with the bundled model) opens, answers the same and takes updates, unchanged.

The fixture is never written to: every test works on a copy under tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simsearch.index import Index
from simsearch.readers import Document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OLD_INDEX = FIXTURES / "index-v0.1.0"
EXPECTED = json.loads((FIXTURES / "index-v0.1.0.expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_index(tmp_path: Path, bundled_encoder) -> Index:
    copy = tmp_path / "index-v0.1.0"
    shutil.copytree(OLD_INDEX, copy)
    return Index.open(copy, encoder=bundled_encoder)


def test_the_fixture_is_what_the_old_release_wrote() -> None:
    manifest = json.loads((OLD_INDEX / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["simsearch_version"], manifest["format_version"], manifest["count"]) == ("0.1.0", 1, 18)


def test_an_old_index_opens_and_answers_as_it_did(old_index: Index) -> None:
    assert len(old_index) == 18
    for query, expected in EXPECTED["queries"].items():
        hits = old_index.search(query, k=3)
        assert [h.id for h in hits] == [doc_id for doc_id, _ in expected]
        assert [round(h.score, 3) for h in hits] == pytest.approx([s for _, s in expected], abs=2e-3)


def test_an_old_index_opens_with_its_own_model(tmp_path: Path) -> None:
    """No encoder given: the index loads its model from what its manifest records."""
    copy = tmp_path / "old"
    shutil.copytree(OLD_INDEX, copy)
    query, expected = next(iter(EXPECTED["queries"].items()))
    assert [h.id for h in Index.open(copy).search(query, k=3)] == [doc_id for doc_id, _ in expected]


def test_an_old_index_takes_updates_and_keeps_its_other_keys(old_index: Index) -> None:
    before = old_index.manifest
    stats = old_index.add([Document("new-1", "Bees dance to tell the hive where the flowers are.", {})])
    assert (stats.added, stats.count) == (1, 19)
    assert old_index.delete(["en-003"]).count == 18
    assert old_index.compact().count == 18
    assert old_index.verify().ok
    hits = old_index.search("how do bees find flowers?", k=2)
    assert {h.id for h in hits} == {"en-004", "new-1"}
    after = old_index.manifest
    for key in ("model", "model_path", "pooling", "dim", "max_length", "precision", "created", "ann"):
        assert after[key] == before[key], key
    assert after["generation"] == before["generation"] + 3


def test_the_fixture_itself_is_untouched() -> None:
    names = sorted(p.name for p in OLD_INDEX.iterdir())
    assert names == ["docs-000001.sqlite", "index-000001.faiss", "manifest.json"]
