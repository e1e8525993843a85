"""Index, the glue of encode/ and store/: its own API (more of its behaviour is exercised through
the store, CLI and server tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simsearch.encode import Encoder as EncoderProtocol
from simsearch.errors import InputError, ModelError
from simsearch.index import Hit, Index, check_encoder, load_encoder
from simsearch.readers import Document
from simsearch.store.manifest import read_manifest
from tests.fakes import FakeEncoder

DOCS = [
    Document("a", "the cat sat on the mat", {"n": 1}),
    Document("b", "fresh bread is good", {}),
    Document("c", "a search engine for text", {}),
]


@pytest.fixture
def index(index_dir: Path, fake_encoder: FakeEncoder) -> Index:
    return Index.build(DOCS, "i", fake_encoder)


def test_the_fake_and_the_torch_encoder_satisfy_the_protocol(
    fake_encoder: FakeEncoder, tiny_bert: Path
) -> None:
    """runtime_checkable checks every member is there (mypy checks the ONNX encoder's types)."""
    from simsearch.encode.torch_encoder import Encoder

    assert isinstance(fake_encoder, EncoderProtocol)
    assert isinstance(Encoder(str(tiny_bert)), EncoderProtocol)
    assert not isinstance(object(), EncoderProtocol)


def test_len_repr_and_manifest_copy(index: Index) -> None:
    assert len(index) == 3
    assert repr(index) == f"Index({str(index.path)!r}, count=3, model='fake/bag-of-words', pooling='mean')"
    copy = index.manifest
    copy["count"] = 99
    assert index.manifest["count"] == 3  # a copy, not the index's own state
    assert index.manifest == json.loads((index.path / "manifest.json").read_text())


def test_search_shapes_and_hit_to_dict(index: Index) -> None:
    single = index.search("the cat", k=2)
    several = index.search(["the cat", "fresh bread"], k=1)
    assert isinstance(single[0], Hit) and len(single) == 2 and [len(h) for h in several] == [1, 1]
    assert single[0].to_dict("the cat") == {
        "query": "the cat",
        "rank": 1,
        "id": "a",
        "score": round(single[0].score, 6),
        "text": "the cat sat on the mat",
        "metadata": {"n": 1},
        "cosine": None if single[0].cosine is None else round(single[0].cosine, 6),
        "bm25": None if single[0].bm25 is None else round(single[0].bm25, 6),
    }
    assert single[0].bm25 is not None  # the default mode is hybrid: "cat" is a stored word


def test_check_encoder_refuses_another_space(index: Index) -> None:
    manifest = read_manifest(index.path)
    check_encoder(manifest, FakeEncoder())

    class Other(FakeEncoder):
        model_id = "other/model"

    with pytest.raises(ModelError, match="other/model.*cannot be mixed"):
        check_encoder(manifest, Other())


def test_load_encoder_of_an_unloadable_model_is_a_model_error(index: Index) -> None:
    with pytest.raises(ModelError):
        load_encoder(read_manifest(index.path))  # the fake model exists nowhere


def test_an_encoder_given_at_open_is_used_as_is(index: Index, fake_encoder: FakeEncoder) -> None:
    reopened = Index.open(index.path, encoder=fake_encoder)
    assert reopened.encoder is fake_encoder


class _OtherModel(FakeEncoder):
    model_id = "other/model"


@pytest.mark.parametrize("shards", [None, 2])
def test_a_mismatched_encoder_names_the_index_directory_the_user_opened(
    tmp_path: Path, fake_encoder: FakeEncoder, shards: int | None
) -> None:
    """Not the manifest's name: a copied or renamed index keeps its old one, and a sharded
    index's identity is a shard's manifest."""
    Index.build(DOCS, tmp_path / "old-name", fake_encoder, shards=shards).close()
    (tmp_path / "old-name").rename(tmp_path / "renamed")
    with pytest.raises(ModelError, match=r"^index 'renamed' was .*other/model") as refused:
        Index.open(tmp_path / "renamed", encoder=_OtherModel())
    assert "old-name" not in str(refused.value) and "shard" not in str(refused.value)


def test_add_can_refuse_texts_already_stored_under_other_ids(index: Index) -> None:
    copies = [Document(f"copy-{d.id}", d.text, {}) for d in DOCS]
    with pytest.raises(InputError, match=r"3 of the first 3 documents repeat texts index 'i'"):
        index.add(copies, allow_duplicates=False)
    with pytest.raises(InputError, match="repeat texts"):  # a plain string's id is its hash
        index.add(["fresh bread is good"], allow_duplicates=False)
    assert len(index) == 3 and index.get(["copy-a"]) == []  # nothing written
    assert index.add([Document("d", "a new text", {})], allow_duplicates=False).added == 1
    assert index.add(copies).added == 3  # allowed by default
