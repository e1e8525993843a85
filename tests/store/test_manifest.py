"""The typed manifest: validated in one place, written in one place, unknown keys kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simsearch.errors import IndexCorruptError, ModelError
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store.manifest import (
    Manifest,
    ModelIdentity,
    identity_mismatch,
    identity_of,
    read_manifest,
    write_manifest,
)
from simsearch.store.manifest_schema import FileEntry

FILES = {
    "faiss": {"name": "index-000001.faiss", "size": 1, "sha256": "ab"},
    "sqlite": {"name": "docs-000001.sqlite", "size": 2, "sha256": "cd"},
}
BASE = {
    "format": "simsearch-index",
    "format_version": 1,
    "model": "m",
    "pooling": "mean",
    "dim": 4,
    "count": 3,
    "generation": 1,
    "files": FILES,
}


def test_typed_fields_and_the_defaults_of_older_manifests() -> None:
    m = Manifest.from_dict(BASE)
    assert (m.model, m.pooling, m.dim, m.count, m.generation) == ("m", "mean", 4, 3, 1)
    assert (m.precision, m.index_type, m.truncated, m.max_length, m.factory) == (
        "fp32",
        "flat",
        0,
        None,
        "IDMap2,Flat",
    )
    assert m.files["faiss"] == FileEntry("index-000001.faiss", 1, "ab")
    assert m.identity == ModelIdentity("m", "mean", 4, "fp32")


def test_unknown_keys_round_trip_unchanged(tmp_path: Path) -> None:
    # ("fingerprint" was the example here; it is a known, validated key since issue #10)
    future = {**BASE, "lexical": {"analyzer": "ko", "docs": 3}, "shards": [1, 2], "future": "x"}
    written = write_manifest(tmp_path, future)
    assert written.to_dict() == future
    assert json.loads((tmp_path / "manifest.json").read_text()) == future
    again = read_manifest(tmp_path)
    assert again == written and again["lexical"] == {"analyzer": "ko", "docs": 3}
    assert again.replace(count=4).to_dict() == {**future, "count": 4}


def test_a_manifest_is_frozen_and_to_dict_is_a_copy() -> None:
    m = Manifest.from_dict({**BASE, "extra": {"a": 1}})
    with pytest.raises(AttributeError):
        m.count = 5  # type: ignore[misc]
    m.to_dict()["extra"]["a"] = 2
    assert m["extra"] == {"a": 1}
    with pytest.raises(TypeError):
        m.raw["count"] = 9  # type: ignore[index]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"dim": "384"}, "'dim' must be a whole number"),
        ({"dim": 0}, "'dim' must be a whole number"),
        ({"count": -1}, "'count' must be a whole number"),
        ({"generation": True}, "'generation' must be a whole number"),
        ({"model": 5}, "'model' must be a string"),
        ({"ann": [1]}, "'ann' is not an object"),
    ],
)
def test_malformed_values_are_corruption_not_crashes(change: dict, words: str) -> None:
    with pytest.raises(IndexCorruptError, match=words):
        Manifest.from_dict({**BASE, **change}, "x/manifest.json")


def test_identity_mismatch_names_what_differs() -> None:
    built = ModelIdentity("m", "mean", 4, "fp32")
    assert identity_mismatch(built, built) is None
    assert "cannot be mixed" in (identity_mismatch(built, ModelIdentity("n", "mean", 4)) or "")
    assert "precision 'fp32'" in (identity_mismatch(built, ModelIdentity("m", "mean", 4, "int8")) or "")


def test_one_model_identity_for_manifests_encoders_reports_and_exports(fake_encoder) -> None:
    """The manifest, an encoder, an eval report and an export name a model the same way."""
    fingerprint = {"model": "f" * 64, "identity": "i" * 64}
    m = Manifest.from_dict({**BASE, "max_length": 128, "precision": "int8", "fingerprint": fingerprint})
    assert m.identity == ModelIdentity("m", "mean", 4, "int8", 128, "f" * 64)
    assert ModelIdentity.of_manifest(m.to_dict()) == m.identity  # a plain dict (a top manifest) too
    # max length and model files tell two encoders apart; vectors still mix when the space agrees
    assert identity_mismatch(m.identity, ModelIdentity("m", "mean", 4, "int8", 256)) is None
    assert m.identity.report_fields() == {
        "model": "m",
        "pooling": "mean",
        "max_length": 128,
        "precision": "int8",
    }
    assert identity_of(fake_encoder) == ModelIdentity("fake/bag-of-words", "mean", 16, "fp32", 64)
    assert {"model", "pooling", "precision", "dim", "max_length", "fingerprint"} <= set(
        ModelIdentity.MANIFEST_KEYS
    )


def test_an_index_keeps_keys_it_does_not_know_through_every_write(index_dir: Path, fake_encoder) -> None:
    """Other simsearch versions add manifest sections; add/delete/compact/repair keep them."""
    index = Index.build(
        [Document("a", "first text", {}), Document("b", "second text", {})], "x", fake_encoder
    )
    file = index.path / "manifest.json"
    data = json.loads(file.read_text())
    data["future_section"] = {"kept": True}
    file.write_text(json.dumps(data))
    index = Index.open("x", encoder=fake_encoder)
    index.add([Document("c", "third text", {})])
    index.delete(["a"])
    index.compact()
    index.verify(repair=True)
    assert json.loads(file.read_text())["future_section"] == {"kept": True}
    assert index.manifest["future_section"] == {"kept": True}


def test_an_encoder_of_another_precision_is_refused(index_dir: Path, fake_encoder) -> None:
    Index.build(["some text"], "x", fake_encoder)

    class Int8(type(fake_encoder)):  # type: ignore[misc]
        precision = "int8"

    with pytest.raises(ModelError, match="precision 'fp32'"):
        Index.open("x", encoder=Int8())
