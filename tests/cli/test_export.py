"""`simsearch export`, Index.to_arrow / Index.export, and building back from an export without
re-encoding (`simsearch build FILE.parquet --vectors-field vector`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.errors import InputError, SimsearchError
from simsearch.index import Index
from simsearch.readers import Document

DOCS = [
    Document("d1", "the cat sat on the mat", {"lang": "en", "year": 2001, "tags": ["a", "b"]}),
    Document("d2", "how to keep bread fresh", {"lang": "en", "year": 2002.5}),
    Document("d3", "서울 지하철은 편리하다", {"lang": "ko", "nested": {"x": 1}}),
    Document("d4", "a fast search engine", {}),
]


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    file = tmp_path / "corpus.jsonl"
    file.write_text(
        "".join(
            json.dumps({"id": d.id, "text": d.text, **d.metadata}, ensure_ascii=False) + "\n" for d in DOCS
        ),
        encoding="utf-8",
    )
    return file


def everything(index: Index) -> list[Document]:
    return index.get(index.ids())


def test_round_trip_builds_an_identical_index_without_encoding(
    corpus: Path, tiny_bert: Path, index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("build", corpus, "--name", "orig", "--model", tiny_bert, "--id-field", "id").exit_code == 0
    out = tmp_path / "orig.parquet"
    done = run("export", "orig", "--vectors", "--output", out)
    assert done.exit_code == 0, done.output
    assert f"Exported 4 documents of index 'orig' to {out}" in done.output

    from simsearch.encode.torch_encoder import Encoder

    def no_encoding(*args, **kwargs):
        raise AssertionError("a build from exported vectors must not run the model")

    monkeypatch.setattr(Encoder, "encode_counting", no_encoding)
    copy = run(
        "build", out, "--name", "copy", "--model", tiny_bert, "--vectors-field", "vector", "--id-field", "id"
    )
    assert copy.exit_code == 0, copy.output
    monkeypatch.undo()

    orig, again = Index.open("orig", index_dir=index_dir), Index.open("copy", index_dir=index_dir)
    assert everything(again) == everything(orig)  # same ids, texts and metadata (nested too)
    assert everything(again)[0].metadata == {"lang": "en", "year": 2001, "tags": ["a", "b"]}
    ids, vectors = orig.get_vectors(orig.ids())
    ids2, vectors2 = again.get_vectors(ids)
    assert ids2 == ids and np.array_equal(vectors, vectors2)  # bit for bit
    for key in ("model", "pooling", "dim", "precision", "max_length", "count"):
        assert again.manifest[key] == orig.manifest[key]
    queries = ["bread", "지하철", "a cat"]
    found, found2 = orig.search(queries, k=4), again.search(queries, k=4)
    assert [[(h.id, h.score, h.text, h.metadata) for h in hits] for hits in found2] == [
        [(h.id, h.score, h.text, h.metadata) for h in hits] for hits in found
    ]


def test_a_sharded_index_exports_and_builds_back_plain(
    corpus: Path, tiny_bert: Path, index_dir: Path, tmp_path: Path
) -> None:
    built = run("build", corpus, "--name", "sh", "--model", tiny_bert, "--id-field", "id", "--shards", "3")
    assert built.exit_code == 0, built.output
    out = tmp_path / "sh.parquet"
    done = run("export", "sh", "--vectors", "--output", out)
    assert done.exit_code == 0 and "Exported 4 documents of index 'sh'" in done.output, done.output
    about = json.loads(pq.read_schema(out).metadata[b"simsearch"])
    sharded = Index.open("sh", index_dir=index_dir)
    assert about["index"] == "sh" and about["count"] == 4 and about["model"] == sharded.manifest["model"]
    copy = run(
        "build", out, "--name", "plain", "--model", tiny_bert, "--vectors-field", "vector", "--id-field", "id"
    )
    assert copy.exit_code == 0, copy.output
    plain = Index.open("plain", index_dir=index_dir)
    order = sorted(sharded.ids())
    assert plain.get(order) == sharded.get(order)  # every document, metadata included
    assert np.array_equal(plain.get_vectors(order)[1], sharded.get_vectors(order)[1])
    lines = run("export", "sh", "--format", "jsonl").output.splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == order


def test_another_models_file_is_refused(
    corpus: Path, tiny_bert: Path, tiny_distilbert: Path, index_dir: Path, tmp_path: Path
) -> None:
    run("build", corpus, "--name", "orig", "--model", tiny_bert, "--id-field", "id")
    out = tmp_path / "orig.parquet"
    run("export", "orig", "--vectors", "-o", out)
    refused = run("build", out, "--name", "other", "--model", tiny_distilbert, "--vectors-field", "vector")
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: {out}: its vectors come from model '{tiny_bert}'")
    assert "Traceback" not in refused.output and not (index_dir / "other").exists()
    pooled = run(
        "build", out, "--name", "other", "--model", tiny_bert, "--pooling", "cls", "--vectors-field", "vector"
    )
    assert pooled.exit_code == 1 and "pooling 'pooler'" in pooled.output and "pooling 'cls'" in pooled.output


def test_vectors_need_a_simsearch_export(tmp_path: Path, tiny_bert: Path, index_dir: Path) -> None:
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "vector": [[1.0, 0.0], [0.0, 1.0]]}), foreign)
    refused = run("build", foreign, "--name", "f", "--model", tiny_bert, "--vectors-field", "vector")
    assert refused.exit_code == 1 and "no simsearch metadata says which model" in refused.output
    missing = run("build", foreign, "--name", "f", "--model", tiny_bert, "--vectors-field", "emb")
    assert missing.exit_code == 1


def test_to_arrow_schema_and_file_metadata(fake_encoder, tmp_path: Path) -> None:
    index = Index.build(DOCS, tmp_path / "idx", fake_encoder)
    table = index.to_arrow()
    assert table.column_names == ["id", "text", "metadata", "vector"]
    assert table.schema.field("vector").type == pa.list_(pa.float32(), fake_encoder.dim)
    assert table.column("id").to_pylist() == ["d1", "d2", "d3", "d4"]
    assert [json.loads(m) for m in table.column("metadata").to_pylist()] == [d.metadata for d in DOCS]
    about = json.loads(table.schema.metadata[b"simsearch"])
    assert {k: about[k] for k in ("model", "pooling", "precision", "dim")} == {
        "model": "fake/bag-of-words",
        "pooling": "mean",
        "precision": "fp32",
        "dim": 16,
    }
    vectors = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
    assert np.array_equal(vectors, fake_encoder.encode([d.text for d in DOCS]))
    assert "vector" not in index.to_arrow(vectors=False).column_names


def test_metadata_as_columns_round_trips(fake_encoder, tmp_path: Path) -> None:
    index = Index.build(DOCS, tmp_path / "idx", fake_encoder)
    table = index.to_arrow(metadata="columns")
    assert table.column_names == ["id", "text", "lang", "year", "tags", "nested", "vector"]
    assert table.schema.field("year").type == pa.float64()  # ints and floats together
    out = tmp_path / "cols.parquet"
    assert index.export(out, vectors=True, metadata="columns") == 4
    from simsearch.readers.parquet import precomputed
    from simsearch.readers import ReadOptions

    batches = list(precomputed([out], ReadOptions(id_field="id"), "vector", fake_encoder))
    docs = [d for batch, _ in batches for d in batch]
    assert docs[0].metadata == {"lang": "en", "year": 2001.0, "tags": ["a", "b"], "nested": None}
    assert docs[2].metadata["nested"] == {"x": 1}
    copy = Index.build_from_vectors(batches, tmp_path / "copy", fake_encoder)
    # Columns give every row every key (null where absent): exact metadata needs the JSON style.
    assert [(h.id, h.score) for h in copy.search("keep bread fresh", k=4)] == [
        (h.id, h.score) for h in index.search("keep bread fresh", k=4)
    ]


def test_jsonl_export_to_stdout_and_file(fake_encoder, index_dir: Path, tmp_path: Path) -> None:
    Index.build(DOCS, "idx", fake_encoder, index_dir=index_dir)
    shown = run("export", "idx", "--format", "jsonl")
    lines = [json.loads(line) for line in shown.output.splitlines()]
    assert lines[0] == {"id": "d1", "text": DOCS[0].text, "metadata": DOCS[0].metadata}
    flat = run("export", "idx", "--format", "jsonl", "--metadata", "columns", "--vectors")
    record = json.loads(flat.output.splitlines()[2])
    assert record["nested"] == {"x": 1} and len(record["vector"]) == 16
    # JSON lines written by export build back like any JSONL input (metadata as columns)
    out = tmp_path / "flat.jsonl"
    assert run("export", "idx", "--format", "jsonl", "--metadata", "columns", "-o", out).exit_code == 0
    from simsearch.readers import ReadOptions, read_documents

    assert list(read_documents([out], ReadOptions(id_field="id"))) == DOCS


def test_export_never_half_writes_or_overwrites(fake_encoder, index_dir: Path, tmp_path: Path) -> None:
    Index.build(DOCS, "idx", fake_encoder, index_dir=index_dir)
    out = tmp_path / "idx.parquet"
    out.write_text("keep me")
    again = run("export", "idx", "-o", out)
    assert again.exit_code == 1 and "already exists; pass --force" in again.output
    assert out.read_text() == "keep me"
    assert run("export", "idx", "-o", out, "--force").exit_code == 0
    assert pq.read_table(out).num_rows == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries
    stdout = run("export", "idx", "-o", "-")
    assert stdout.exit_code == 1 and "Parquet is not written to standard output" in stdout.output
    gone = run("export", "nope")
    assert gone.exit_code == 1 and "not found" in gone.output


def test_precomputed_vectors_are_checked(fake_encoder, tmp_path: Path) -> None:
    bad = [(DOCS[:1], np.full((1, 16), np.nan, dtype=np.float32))]
    with pytest.raises(InputError, match="not a finite unit vector"):
        Index.build_from_vectors(bad, tmp_path / "x", fake_encoder)
    long = [(DOCS[:1], np.full((1, 16), 3.0, dtype=np.float32))]
    with pytest.raises(InputError, match="norm"):
        Index.build_from_vectors(long, tmp_path / "x", fake_encoder)
    wrong = [(DOCS[:2], np.zeros((2, 8), dtype=np.float32))]
    with pytest.raises(InputError, match="shape"):
        Index.build_from_vectors(wrong, tmp_path / "x", fake_encoder)
    assert not (tmp_path / "x").exists()
    with pytest.raises(SimsearchError, match="unknown export format"):
        Index.build(DOCS, tmp_path / "y", fake_encoder).export(tmp_path / "y.csv", format="csv")
