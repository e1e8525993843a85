"""The manifest's ``truncated``: how many STORED documents were cut at the model's max length.

Before: every add added the cut texts it encoded, replaced and deleted documents were never
subtracted, so the count only grew.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.encode.torch_encoder import Encoder
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store.index_types import builder
from simsearch.store.write.cuts import cut_flags
from simsearch.store.write.writer import StoreWriter
from tests.fakes import FakeEncoder

LONG = " ".join(f"word{i}" for i in range(80))  # the fake encoder keeps 64 words


def _docs() -> list[Document]:
    texts = {"long1": LONG, "long2": LONG + " more", "short1": "a cat", "short2": "bread"}
    return [Document(doc_id, text, {}) for doc_id, text in texts.items()]


def _truncated(index: Index) -> int:
    return int(Index.open(index.path).manifest["truncated"])


@pytest.mark.parametrize("shards", [None, 2])
def test_truncated_counts_stored_documents_through_add_delete_compact(
    index_dir: Path, shards: int | None
) -> None:
    index = Index.build(_docs(), "t", FakeEncoder(), index_dir=index_dir, shards=shards)
    assert _truncated(index) == 2
    assert index.add([Document("long1", "now short", {})]).truncated == 0  # replaced: no longer cut
    assert _truncated(index) == 1
    index.add([Document("short1", LONG + " grown", {}), Document("short2", "bread", {"x": 1})])
    assert _truncated(index) == 2
    index.add([Document("short1", LONG + " grown", {})])  # unchanged: nothing encoded or counted
    assert _truncated(index) == 2
    index.delete(["long2", "nowhere"])
    assert _truncated(index) == 1
    index.delete(["short2"])
    assert _truncated(index) == 1
    index.compact()
    assert _truncated(index) == 1
    index.delete(["short1"])
    assert _truncated(index) == 0 and len(Index.open(index.path)) == 1


def _inflate(path: Path, truncated: int) -> None:
    """Write a generation whose manifest counts like the old code did (too many)."""
    with StoreWriter(path, update=True) as writer:
        assert writer.previous is not None
        writer.commit({**dict(writer.previous), "truncated": truncated}, builder("flat"))


def test_an_old_inflated_count_is_capped_and_compact_counts_afresh(index_dir: Path) -> None:
    index = Index.build(_docs(), "old", FakeEncoder(), index_dir=index_dir)
    _inflate(index.path, 9)  # e.g. four adds of the same two long documents
    index = Index.open(index.path)
    index._encoder = FakeEncoder()  # the fake model has no files to load from
    index.delete(["short1"])
    assert _truncated(index) == 3  # capped at the document count: no more can be cut
    index.compact()
    assert _truncated(index) == 2  # counted again from the stored texts


def test_without_a_loadable_model_delete_still_works_and_carries_the_count(index_dir: Path) -> None:
    index = Index.build(_docs(), "gone", FakeEncoder(), index_dir=index_dir)
    index = Index.open(index.path)  # the fake model's files do not exist: its encoder cannot load
    assert index.delete(["long1"]).deleted == 1
    assert _truncated(index) == 2  # cannot tell which were cut: carried forward (<= count)


def test_cut_flags_of_the_real_encoders_match_what_encode_counts(tiny_bert: Path, index_dir: Path) -> None:
    encoder = Encoder(str(tiny_bert), max_length=16)
    texts = ["the cat sat on the mat", "bread " * 40, "a", "서울 지하철은 편리하다 " * 10]
    flags = cut_flags(encoder, texts)
    assert flags == [False, True, False, True]
    assert sum(flags) == encoder.encode_counting(texts)[1]
    assert cut_flags(FakeEncoder(), ["a b", LONG]) == [False, True]
    Index.build(texts, "real", encoder, index_dir=index_dir)
    onnx = Index.open("real", index_dir=index_dir).encoder
    assert type(onnx).__name__ == "OnnxEncoder" and cut_flags(onnx, texts) == flags


def test_the_cli_shows_the_stored_count(tiny_bert: Path, index_dir: Path, tmp_path: Path) -> None:
    Index.build(
        ["short text", "bread " * 40], "c", Encoder(str(tiny_bert), max_length=16), index_dir=index_dir
    )
    runner = CliRunner()
    source = tmp_path / "more.jsonl"
    source.write_text('{"id": "x", "text": "' + "cat " * 40 + '"}\n', encoding="utf-8")
    for _ in range(2):
        source.write_text('{"id": "x", "text": "' + "cat " * 40 + '"}\n', encoding="utf-8")
        assert runner.invoke(main, ["add", "c", str(source), "--id-field", "id"]).exit_code == 0
        source.write_text('{"id": "x", "text": "short now"}\n', encoding="utf-8")
        assert runner.invoke(main, ["add", "c", str(source), "--id-field", "id"]).exit_code == 0
    info = runner.invoke(main, ["info", "c", "--json"])
    assert '"truncated": 1' in info.output
