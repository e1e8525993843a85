"""Issue 10, entry points: what the readers and the library refuse, and how (one line, file:line).

Each test here failed on the code before the fix (base commit 9411138).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from simsearch.errors import InputError, QueryError
from simsearch.index import Index
from simsearch.readers import Document, ReadOptions, read_documents


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def read(*sources: str | Path, **options) -> list[Document]:
    return list(read_documents([str(s) for s in sources], ReadOptions(**options)))


def refused(source: Path, **options) -> str:
    with pytest.raises(InputError) as caught:
        read(source, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- Bug 6: invalid Unicode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"text": "bad \\ud800 text"}',  # lone high surrogate
        '{"text": "reversed \\ude00\\ud83d pair"}',  # a pair in the wrong order
        '{"text": "ok", "note": "low \\udfff alone"}',  # in a metadata value
        '{"text": "ok", "tags": ["a", {"k": "\\udc80"}]}',  # nested in metadata
        '{"text": "ok", "k\\ud800ey": 1}',  # in a metadata key
    ],
)
def test_jsonl_invalid_unicode_names_file_and_line(tmp_path: Path, line: str) -> None:
    source = write(tmp_path / "docs.jsonl", '{"text": "fine"}\n' + line + "\n")
    message = refused(source)
    assert f"{source}:2:" in message and "lone surrogate" in message


def test_jsonl_invalid_unicode_in_the_id_field(tmp_path: Path) -> None:
    source = write(tmp_path / "docs.jsonl", '{"id": "a\\ud800", "text": "fine"}\n')
    message = refused(source, id_field="id")
    assert f"{source}:1:" in message and "id" in message and "surrogate" in message


def test_a_valid_surrogate_pair_is_an_emoji_not_an_error(tmp_path: Path) -> None:
    source = write(tmp_path / "docs.jsonl", '{"text": "smile \\ud83d\\ude00"}\n')
    assert read(source)[0].text == "smile \U0001f600"


def test_library_build_refuses_invalid_unicode_and_writes_nothing(fake_encoder, index_dir: Path) -> None:
    docs = [Document("a", "fine"), Document("b", "bad \udcff", {}, "mine.jsonl:7")]
    with pytest.raises(InputError, match="mine.jsonl:7: text: invalid Unicode"):
        Index.build(docs, "idx", fake_encoder)
    assert not (index_dir / "idx").exists()
    with pytest.raises(InputError, match="item 2: text: invalid Unicode"):
        Index.build(["fine", "bad \ud800"], "idx", fake_encoder)


def test_library_add_delete_and_search_refuse_invalid_unicode(fake_encoder, index_dir: Path) -> None:
    index = Index.build([Document("a", "the cat sat")], "idx", fake_encoder)
    for bad in (Document("b\ud800", "text"), Document("b", "text", {"k": "\udc00"}), "plain \ud800"):
        with pytest.raises(InputError, match="invalid Unicode"):
            index.add([bad])
    with pytest.raises(InputError, match="invalid Unicode"):
        index.delete(["a\ud800"])
    with pytest.raises(QueryError, match="invalid Unicode"):
        index.search("cat \ud800")
    with pytest.raises(QueryError, match="query 2: invalid Unicode"):
        index.search(["cat", "cat \udcff"])
    assert len(Index.open("idx", encoder=fake_encoder)) == 1
    assert index.search("cat")[0].id == "a"


# --- Bug 7: non-finite numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "[1, NaN]", '{"deep": {"er": Infinity}}']
)
def test_jsonl_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    source = write(tmp_path / "docs.jsonl", '{"text": "a"}\n\n{"text": "b", "score": ' + value + "}\n")
    message = refused(source)
    assert f"{source}:3:" in message
    assert "NaN" in message or "Infinity" in message


def test_non_finite_text_fields_are_refused_too(tmp_path: Path) -> None:
    source = write(tmp_path / "docs.jsonl", '{"text": NaN}\n')
    assert f"{source}:1:" in refused(source)


@pytest.mark.parametrize(
    "metadata",
    [
        {"x": float("nan")},
        {"x": [1.0, float("inf")]},
        {"x": {"y": float("-inf")}},
        {"x": {1, 2}},
        {"x": b"bytes"},
    ],
)
def test_library_write_api_refuses_what_json_cannot_hold(fake_encoder, index_dir: Path, metadata) -> None:
    with pytest.raises(InputError, match="where.jsonl:4: metadata"):
        Index.build([Document("a", "text", metadata, "where.jsonl:4")], "idx", fake_encoder)
    index = Index.build([Document("a", "the cat")], "idx", fake_encoder)
    with pytest.raises(InputError, match="metadata"):
        index.add([Document("b", "text", metadata)])
    assert len(Index.open("idx", encoder=fake_encoder)) == 1


def test_huge_and_deep_json_are_one_line_errors(tmp_path: Path) -> None:
    deep = write(tmp_path / "deep.jsonl", '{"text": "a", "m": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    assert f"{deep}:1:" in refused(deep)
    huge = write(tmp_path / "huge.jsonl", '{"text": "a", "m": ' + "9" * 5000 + "}\n")
    assert f"{huge}:1:" in refused(huge)


def test_min_score_must_be_a_finite_cosine(fake_encoder, index_dir: Path) -> None:
    index = Index.build([Document("a", "the cat")], "idx", fake_encoder)
    bad: Any
    for bad in (float("nan"), float("inf"), float("-inf"), True, "0.5"):  # wrong on purpose
        with pytest.raises(QueryError, match="min_score"):
            index.search("cat", min_score=bad)
    assert index.search("cat", min_score=-1)[0].id == "a"


# --- ids of JSONL records -------------------------------------------------------------------------


def test_integer_ids_become_their_decimal_string(tmp_path: Path) -> None:
    source = write(
        tmp_path / "docs.jsonl",
        '{"id": 7, "text": "a"}\n{"id": -12, "text": "b"}\n'
        '{"id": 123456789012345678901234567890, "text": "c"}\n',
    )
    assert [d.id for d in read(source, id_field="id")] == ["7", "-12", "123456789012345678901234567890"]


@pytest.mark.parametrize(
    "value, kind",
    [
        ("true", "boolean"),
        ("false", "boolean"),
        ("1.0", "fraction"),
        ("1e3", "fraction"),
        ('["a", 1]', "list"),
        ('{"a": 1}', "object"),
        ("null", "no value"),
    ],
)
def test_other_id_types_are_refused(tmp_path: Path, value: str, kind: str) -> None:
    source = write(tmp_path / "docs.jsonl", '{"id": "ok", "text": "a"}\n{"id": ' + value + ', "text": "b"}\n')
    message = refused(source, id_field="id")
    assert f"{source}:2:" in message and kind in message


def test_float_id_does_not_collide_with_its_string(tmp_path: Path) -> None:
    source = write(tmp_path / "docs.jsonl", '{"id": "1.0", "text": "a"}\n{"id": 1.0, "text": "b"}\n')
    assert 'write "1.0"' in refused(source, id_field="id")


# --- CSV ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content",
    [
        ("t.csv", "text,tag,tag\nhello,a,b\n"),
        ("t.tsv", "text\ttext\nhello\tworld\n"),
        ("t.csv", "id,text,,\n1,hello,,\n"),
    ],
)
def test_duplicate_header_is_refused(tmp_path: Path, name: str, content: str) -> None:
    source = write(tmp_path / name, content)
    message = refused(source)
    assert f"{source}:1:" in message and "duplicate column" in message


# --- sources that are not regular files ---------------------------------------------------------


def test_a_fifo_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "docs.jsonl"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as sink:
            sink.write('{"text": "from a pipe"}\n{"text": "second"}\n')

    writer = threading.Thread(target=feed)
    writer.start()
    docs = read(fifo)
    writer.join(10)
    assert [d.text for d in docs] == ["from a pipe", "second"]


def test_process_substitution_is_read_as_text(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"first line\nsecond line\n")
    os.close(write_end)
    try:
        docs = read(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert [d.text for d in docs] == ["first line", "second line"]
    assert docs[0].id == f"/dev/fd/{read_end}:1"


def test_a_source_that_fails_to_read_is_a_one_line_error(tmp_path: Path) -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO: a stand-in for a failing disk.
    message = refused(Path("/proc/self/mem"), format="txt")
    assert message.startswith("/proc/self/mem: cannot read")


# --- derived ids do not depend on the spelling of a path -----------------------------------------


def test_derived_ids_are_the_same_for_every_spelling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    write(work / "data" / "a.txt", "one\ntwo\n")
    write(work / "data" / "b.jsonl", '{"text": "x"}\n')
    write(work / "notes" / "n.md", "note\n")
    (tmp_path / "link").symlink_to(work / "data")
    monkeypatch.chdir(work)
    spellings = [
        "data/a.txt",
        "./data/a.txt",
        str(work / "data" / "a.txt"),
        "data//a.txt",
        "data/../data/a.txt",
        "../work/data/a.txt",
        str(tmp_path / "link" / "a.txt"),
    ]
    for spelling in spellings:
        docs = read(spelling)
        assert [d.id for d in docs] == ["data/a.txt:1", "data/a.txt:2"], spelling
        assert docs[0].metadata == {"source": "data/a.txt", "line": 1}
    assert {read(s)[0].id for s in ["data/b.jsonl", "./data/b.jsonl", str(work / "data/b.jsonl")]} == {
        "data/b.jsonl:1"
    }
    assert {read(s)[0].id for s in ["notes", "./notes/", str(work / "notes")]} == {"notes/n.md"}
    outside = write(tmp_path / "elsewhere.txt", "far\n")
    assert read(outside)[0].id == f"{outside.resolve().as_posix()}:1"
    from simsearch.readers import canonical_path

    assert canonical_path("./data/a.txt") == "data/a.txt"


def test_old_rule_keeps_paths_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "data" / "a.txt", "one\n")
    monkeypatch.chdir(tmp_path)
    assert read("./data/a.txt", derived_ids="as-given")[0].id == "./data/a.txt:1"


# --- ids files ----------------------------------------------------------------------------------


def test_ids_are_read_exactly_one_per_line(tmp_path: Path) -> None:
    from simsearch.readers import read_ids

    source = write(tmp_path / "ids.txt", b"\xef\xbb\xbf plain\r\n  spaced  \n\nlast\ttab")
    with source.open("rb") as stream:
        assert read_ids(stream, str(source)) == [" plain", "  spaced  ", "last\ttab"]


def test_json_written_by_readers_stays_valid(tmp_path: Path) -> None:
    source = write(tmp_path / "docs.jsonl", '{"text": "a", "n": 1.5, "big": 1e300}\n')
    doc = read(source)[0]
    json.dumps(doc.metadata, allow_nan=False)
