"""Parquet input: columns to documents, row ranges, batches, errors, and a CLI build from Parquet."""

from __future__ import annotations

import datetime
import io
import json
import sys
from pathlib import Path

import pyarrow as pa  # the parquet extra: installed by `make install` and CI
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from simsearch.errors import InputError, SimsearchError
from simsearch.readers.parquet import read_parquet
from simsearch.readers import ReadOptions, read_documents


def write_table(path: Path, columns: dict, row_group_size: int | None = None) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def read(path: Path, **options) -> list:
    return list(read_documents([str(path)], ReadOptions(**options)))


@pytest.fixture
def papers(tmp_path: Path) -> Path:
    return write_table(
        tmp_path / "papers.parquet",
        {
            "doc_id": ["a1", "b2", "c3"],
            "title": ["Bread", None, "Trains"],
            "text": ["keeping bread fresh", "cats on mats", "the Seoul subway"],
            "year": [2001, 2002, None],
            "score": [0.5, float("nan"), 1.5],
            "published": [datetime.date(2001, 1, 2), None, datetime.date(2003, 4, 5)],
            "embedding": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        },
    )


def test_suffix_detects_parquet_and_columns_map_like_jsonl(papers: Path) -> None:
    docs = read(papers, text_fields=("title", "text"), id_field="doc_id")
    assert [d.id for d in docs] == ["a1", "b2", "c3"]
    # Text fields joined with a space as for JSONL; a null field is skipped.
    assert [d.text for d in docs] == ["Bread keeping bread fresh", "cats on mats", "Trains the Seoul subway"]
    # Other scalar columns are metadata (dates as ISO text, NaN as null); the list column is not.
    assert docs[0].metadata == {"year": 2001, "score": 0.5, "published": "2001-01-02"}
    assert docs[1].metadata == {"year": 2002, "score": None, "published": None}
    assert docs[0].where == f"{papers}:row 1"
    json.dumps([d.metadata for d in docs], allow_nan=False)  # valid JSON, no NaN


def test_default_text_field_and_derived_ids(papers: Path) -> None:
    docs = read(papers)
    assert [d.id for d in docs] == [f"{papers}:1", f"{papers}:2", f"{papers}:3"]
    assert docs[2].metadata["doc_id"] == "c3" and "title" in docs[2].metadata


def test_format_option_reads_any_suffix(papers: Path, tmp_path: Path) -> None:
    other = tmp_path / "papers.bin"
    other.write_bytes(papers.read_bytes())
    assert [d.text for d in read(other, format="parquet")] == [d.text for d in read(papers)]


def test_row_ranges_split_the_file_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import simsearch.readers.parquet as reader

    monkeypatch.setattr(reader, "PARQUET_BATCH", 3)  # batches smaller than row groups
    texts = [f"row number {n}" for n in range(23)]
    path = write_table(tmp_path / "rows.parquet", {"text": texts}, row_group_size=5)
    whole = list(read_parquet(path))
    assert [d.text for d in whole] == texts
    parts = [list(read_parquet(path, start=a, stop=b)) for a, b in ((0, 7), (7, 8), (8, 21), (21, 99))]
    assert [d for part in parts for d in part] == whole  # same ids (absolute row numbers) and texts
    assert list(read_parquet(path, start=23)) == []
    with pytest.raises(InputError, match="bad row range"):
        list(read_parquet(path, start=5, stop=2))


def test_split_applies_to_parquet_texts(tmp_path: Path) -> None:
    path = write_table(tmp_path / "s.parquet", {"text": ["One. Two.", "Three."]})
    docs = read(path, split="sentences")
    assert [d.text for d in docs] == ["One.", "Two.", "Three."]
    assert docs[1].id == f"{path}:1#2"


def test_missing_column_names_the_columns(papers: Path) -> None:
    with pytest.raises(InputError) as caught:
        read(papers, text_fields=("body",))
    assert str(caught.value).startswith(f"{papers}: no column 'body' (columns: doc_id, title, text")
    with pytest.raises(InputError, match="no column 'key'"):
        read(papers, id_field="key")


def test_null_id_is_an_error_with_its_row(tmp_path: Path) -> None:
    path = write_table(tmp_path / "ids.parquet", {"id": ["x", None], "text": ["a", "b"]})
    with pytest.raises(InputError, match=r"ids.parquet:row 2: no value for the id field 'id'"):
        read(path, id_field="id")


def test_not_parquet_and_stdin(tmp_path: Path) -> None:
    fake = tmp_path / "fake.parquet"
    fake.write_text("text\nhello\n")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read(fake)
    with pytest.raises(InputError, match="Parquet cannot be read from standard input"):
        list(read_documents(["-"], ReadOptions(format="parquet"), stdin=io.BytesIO(b"x")))


def test_empty_parquet_is_nothing_to_index(tmp_path: Path) -> None:
    path = write_table(tmp_path / "empty.parquet", {"text": pa.array([], pa.string())})
    with pytest.raises(InputError, match="nothing to index"):
        read(path)


def test_missing_pyarrow_is_one_clear_line(papers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(SimsearchError) as caught:
        read(papers)
    assert str(caught.value) == (
        "Parquet and Arrow need pyarrow, which is not installed: "
        "pip install -e '.[parquet]' in the simsearch checkout"
    )


def test_cli_builds_from_parquet(papers: Path, tiny_bert: Path, index_dir: Path) -> None:
    from simsearch.cli.main import main

    runner = CliRunner()
    built = runner.invoke(
        main,
        [
            "build",
            str(papers),
            "--name",
            "papers",
            "--model",
            str(tiny_bert),
            "--text-field",
            "text",
            "--id-field",
            "doc_id",
        ],
    )
    assert built.exit_code == 0, built.output
    assert "3 documents" in built.output
    found = runner.invoke(main, ["query", "papers", "fresh bread", "-k", "3", "--json"])
    assert found.exit_code == 0, found.output
    hits = [json.loads(line) for line in found.output.splitlines()]
    assert sorted(hit["id"] for hit in hits) == ["a1", "b2", "c3"]
    assert next(h for h in hits if h["id"] == "a1")["metadata"]["published"] == "2001-01-02"
