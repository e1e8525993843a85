"""Tests for simsearch.readers and simsearch.readers.splitting: every format, split mode and input error."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsearch.errors import InputError
from simsearch.readers import Document, ReadOptions, read_documents
from simsearch.readers.splitting import split_lines, split_paragraphs, split_sentences


def read(*sources: str | Path, stdin: bytes | None = None, **options) -> list[Document]:
    stream = io.BytesIO(stdin) if stdin is not None else None
    return list(read_documents([str(s) for s in sources], ReadOptions(**options), stdin=stream))


def write(path: Path, data: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return str(path)


def read_error(*sources: str | Path, **options) -> str:
    with pytest.raises(InputError) as caught:
        read(*sources, **options)
    return str(caught.value)


# --- plain text ---------------------------------------------------------------------------------


def test_txt_one_document_per_non_empty_line(tmp_path: Path) -> None:
    src = write(tmp_path / "notes.txt", "first line\n\n   \n  second line  \nthird\n")
    docs = read(src)
    assert [d.text for d in docs] == ["first line", "second line", "third"]
    # Derived ids are "path:line" with the physical line number, so blank lines do not shift them.
    assert [d.id for d in docs] == [f"{src}:1", f"{src}:4", f"{src}:5"]
    assert docs[1].metadata == {"source": src, "line": 4}
    assert docs[1].where == f"{src}:4"


def test_txt_ids_are_stable_across_reads(tmp_path: Path) -> None:
    src = write(tmp_path / "a.txt", "x\ny\nz\n")
    assert read(src) == read(src)


def test_txt_without_trailing_newline(tmp_path: Path) -> None:
    src = write(tmp_path / "a.txt", "one\ntwo")
    assert [d.text for d in read(src)] == ["one", "two"]


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    src = write(tmp_path / "bom.txt", b"\xef\xbb\xbfhello\nworld\n")
    assert [d.text for d in read(src)] == ["hello", "world"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    src = write(tmp_path / "crlf.txt", b"one\r\ntwo\r\n\r\nthree\r\n")
    docs = read(src)
    assert [d.text for d in docs] == ["one", "two", "three"]
    assert [d.metadata["line"] for d in docs] == [1, 2, 4]


def test_korean_text_round_trips(tmp_path: Path) -> None:
    src = write(tmp_path / "ko.txt", "서울 지하철은 편리하다.\n김치찌개를 끓이는 법\n")
    assert [d.text for d in read(src)] == ["서울 지하철은 편리하다.", "김치찌개를 끓이는 법"]


# --- CSV / TSV ----------------------------------------------------------------------------------


def test_csv_default_text_column_and_metadata(tmp_path: Path) -> None:
    src = write(tmp_path / "d.csv", "id,text,lang\n1,hello world,en\n2,안녕하세요,ko\n")
    docs = read(src)
    assert [d.text for d in docs] == ["hello world", "안녕하세요"]
    assert [d.id for d in docs] == [f"{src}:2", f"{src}:3"]  # derived: the header is line 1
    assert docs[0].metadata == {"id": "1", "lang": "en"}


def test_csv_id_field_and_repeated_text_fields(tmp_path: Path) -> None:
    src = write(tmp_path / "beir.csv", "_id,title,text,year\nd1,Title one,Body one,2020\nd2,,Body two,2021\n")
    docs = read(src, text_fields=("title", "text"), id_field="_id")
    assert [d.id for d in docs] == ["d1", "d2"]
    # Joined with exactly one space; an empty title does not leave a stray space.
    assert [d.text for d in docs] == ["Title one Body one", "Body two"]
    assert docs[0].metadata == {"year": "2020"}


def test_csv_quoted_fields_with_commas_quotes_and_newlines(tmp_path: Path) -> None:
    src = write(tmp_path / "q.csv", 'id,text\n1,"a, b\nstill one"\n2,"say ""hi"""\n3,plain\n')
    docs = read(src, id_field="id")
    assert [(d.id, d.text) for d in docs] == [("1", "a, b\nstill one"), ("2", 'say "hi"'), ("3", "plain")]


def test_csv_with_bom_and_crlf(tmp_path: Path) -> None:
    src = write(tmp_path / "w.csv", b'\xef\xbb\xbfid,text\r\n1,"two\r\nlines"\r\n2,second\r\n')
    docs = read(src, id_field="id")
    assert [(d.id, d.text) for d in docs] == [("1", "two\nlines"), ("2", "second")]


def test_csv_blank_rows_are_skipped(tmp_path: Path) -> None:
    src = write(tmp_path / "b.csv", "text,n\nfirst,1\n\n,\nsecond,2\n")
    assert [d.text for d in read(src)] == ["first", "second"]


def test_tsv(tmp_path: Path) -> None:
    src = write(tmp_path / "d.tsv", "id\ttext\tscore\nq1\tcommas, are, fine\t0.5\nq2\tsecond\t1\n")
    docs = read(src, id_field="id")
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        ("q1", "commas, are, fine", {"score": "0.5"}),
        ("q2", "second", {"score": "1"}),
    ]


def test_tsv_text_may_start_with_a_quote(tmp_path: Path) -> None:
    # Plain TSV (MS MARCO's collection.tsv, for one) has no quoting: quotes are ordinary characters.
    src = write(tmp_path / "q.tsv", 'id\ttext\n1\t"Hello," she said.\n2\tplain\n')
    assert [d.text for d in read(src, id_field="id")] == ['"Hello," she said.', "plain"]


# --- JSONL --------------------------------------------------------------------------------------


def test_jsonl_fields_ids_metadata_and_blank_lines(tmp_path: Path) -> None:
    records = [
        {"_id": "a", "title": "T1", "text": "Body one", "n": 1, "tags": ["x", "y"], "meta": {"k": None}},
        {"_id": 7, "title": None, "text": "Body two", "ok": True},
    ]
    lines = [json.dumps(records[0]), "", "   ", json.dumps(records[1], ensure_ascii=False)]
    src = write(tmp_path / "c.jsonl", "\n".join(lines) + "\n")
    docs = read(src, text_fields=("title", "text"), id_field="_id")
    assert [d.id for d in docs] == ["a", "7"]
    assert [d.text for d in docs] == ["T1 Body one", "Body two"]
    # Non-string metadata keeps its JSON type.
    assert docs[0].metadata == {"n": 1, "tags": ["x", "y"], "meta": {"k": None}}
    assert docs[1].metadata == {"ok": True}
    assert docs[1].where == f"{src}:4"


def test_jsonl_derived_ids_and_default_text_field(tmp_path: Path) -> None:
    src = write(tmp_path / "d.jsonl", '{"text": "one"}\n\n{"text": "two", "x": 1}\n')
    docs = read(src)
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        (f"{src}:1", "one", {}),
        (f"{src}:3", "two", {"x": 1}),
    ]


def test_jsonl_non_string_text_is_serialised(tmp_path: Path) -> None:
    src = write(tmp_path / "n.jsonl", '{"text": 42}\n{"text": ["a", "b"]}\n')
    assert [d.text for d in read(src)] == ["42", '["a", "b"]']


def test_ndjson_suffix_and_bom(tmp_path: Path) -> None:
    src = write(tmp_path / "d.ndjson", b'\xef\xbb\xbf{"text": "first"}\r\n{"text": "second"}\r\n')
    assert [d.text for d in read(src)] == ["first", "second"]


# --- directories and stdin ----------------------------------------------------------------------


def test_directory_recursive_txt_and_md_sorted(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "b.txt", "file b\nsecond line of b\n")
    write(root / "a" / "c.md", "# heading\n\nmarkdown body\n")
    write(root / "a" / "b" / "d.txt", "deep file")
    write(root / "z.TXT", "upper-case suffix")
    write(root / "skip.csv", "text\nnot read\n")
    write(root / "empty.txt", "\n  \n")
    docs = read(root)
    prefix = root.as_posix()  # ids are the directory as given plus the relative path
    assert [d.id for d in docs] == [f"{prefix}/{rel}" for rel in ("a/b/d.txt", "a/c.md", "b.txt", "z.TXT")]
    by_id = {d.id: d for d in docs}
    assert by_id[f"{prefix}/b.txt"].text == "file b\nsecond line of b"  # one document per file
    assert by_id[f"{prefix}/a/c.md"].text == "# heading\n\nmarkdown body"
    assert by_id[f"{prefix}/a/c.md"].metadata == {"source": str(root / "a" / "c.md")}


def test_directory_split_sentences(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root / "x.txt", "One sentence here. Another one follows.")
    docs = read(root, split="sentences")
    assert [(d.id, d.text) for d in docs] == [
        (f"{root.as_posix()}/x.txt#1", "One sentence here."),
        (f"{root.as_posix()}/x.txt#2", "Another one follows."),
    ]


def test_ids_from_two_directories_are_unique(tmp_path: Path) -> None:
    write(tmp_path / "one" / "README.md", "first readme")
    write(tmp_path / "two" / "README.md", "second readme")
    ids = [d.id for d in read(tmp_path / "one", tmp_path / "two")]
    assert len(set(ids)) == len(ids) == 2


def test_stdin_dash_as_txt_by_default() -> None:
    docs = read("-", stdin=b"alpha\n\nbeta\n")
    assert [(d.id, d.text) for d in docs] == [("stdin:1", "alpha"), ("stdin:3", "beta")]
    assert docs[0].where == "<stdin>:1"


def test_stdin_with_format_jsonl() -> None:
    docs = read(
        "-", stdin=b'{"id": "q", "body": "hello"}\n', format="jsonl", text_fields=("body",), id_field="id"
    )
    assert [(d.id, d.text) for d in docs] == [("q", "hello")]


def test_several_sources_in_order(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "from a\n")
    b = write(tmp_path / "b.jsonl", '{"text": "from b"}\n')
    assert [d.text for d in read(b, a)] == ["from b", "from a"]


# --- format detection ---------------------------------------------------------------------------


def test_format_override_beats_the_suffix(tmp_path: Path) -> None:
    src = write(tmp_path / "data.txt", '{"text": "json in a .txt"}\n')
    assert [d.text for d in read(src)] == ['{"text": "json in a .txt"}']
    assert [d.text for d in read(src, format="jsonl")] == ["json in a .txt"]
    odd = write(tmp_path / "export.dat", "text\nfrom csv\n")
    assert [d.text for d in read(odd, format="csv")] == ["from csv"]


@pytest.mark.parametrize("name", ["data.xml", "noext"])
def test_unknown_suffix_asks_for_format(tmp_path: Path, name: str) -> None:
    src = write(tmp_path / name, "x\n")
    message = read_error(src)
    assert src in message and "--format" in message


def test_unknown_format_and_split_options(tmp_path: Path) -> None:
    src = write(tmp_path / "a.txt", "x\n")
    assert "unknown format" in read_error(src, format="xml")
    assert "unknown split" in read_error(src, split="words")


# --- splitting ----------------------------------------------------------------------------------


def test_split_lines_on_a_jsonl_field(tmp_path: Path) -> None:
    src = write(tmp_path / "l.jsonl", json.dumps({"id": "d", "text": "line one\n\nline two", "k": 1}) + "\n")
    docs = read(src, id_field="id", split="lines")
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        ("d#1", "line one", {"k": 1, "part": 1}),
        ("d#2", "line two", {"k": 1, "part": 2}),
    ]


def test_split_lines_on_txt_keeps_line_ids(tmp_path: Path) -> None:
    src = write(tmp_path / "a.txt", "one\ntwo\n")
    assert [d.id for d in read(src, split="lines")] == [f"{src}:1", f"{src}:2"]


def test_split_paragraphs_on_txt(tmp_path: Path) -> None:
    src = write(tmp_path / "p.txt", "First para\ncontinues here.\n\n\nSecond para.\r\n\r\nThird.\n")
    docs = read(src, split="paragraphs")
    assert [d.text for d in docs] == ["First para continues here.", "Second para.", "Third."]
    assert [d.id for d in docs] == [f"{src}#1", f"{src}#2", f"{src}#3"]


def test_split_sentences_on_txt_lines(tmp_path: Path) -> None:
    src = write(tmp_path / "s.txt", "Dr. Kim arrived. She sat down.\n서울은 크다. 날씨가 좋아요?\n")
    docs = read(src, split="sentences")
    assert [(d.id, d.text) for d in docs] == [
        (f"{src}:1#1", "Dr. Kim arrived."),
        (f"{src}:1#2", "She sat down."),
        (f"{src}:2#1", "서울은 크다."),
        (f"{src}:2#2", "날씨가 좋아요?"),
    ]
    assert docs[3].metadata == {"source": src, "line": 2, "part": 2}


def test_split_none_keeps_whole_records(tmp_path: Path) -> None:
    src = write(tmp_path / "n.jsonl", json.dumps({"text": "One. Two.\nThree."}) + "\n")
    assert [d.text for d in read(src, split="none")] == ["One. Two.\nThree."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith went home. He slept well! Did he? Yes.",
            ["Dr. Smith went home.", "He slept well!", "Did he?", "Yes."],
        ),
        (
            "Mr. and Mrs. Lee met Prof. Park at 5 p.m. on Jan. 3. Then they left.",
            ["Mr. and Mrs. Lee met Prof. Park at 5 p.m. on Jan. 3.", "Then they left."],
        ),
        (
            "The U.S. Army, e.g. its cooks, ate. J. R. Smith wrote it.",
            ["The U.S. Army, e.g. its cooks, ate.", "J. R. Smith wrote it."],
        ),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        (
            "서울 지하철은 편리하다. 오늘 날씨가 좋아요? 내일 비가 올까요! 네.",
            ["서울 지하철은 편리하다.", "오늘 날씨가 좋아요?", "내일 비가 올까요!", "네."],
        ),
        ("김 박사는 왔다. Dr. Lee도 왔어요.", ["김 박사는 왔다.", "Dr. Lee도 왔어요."]),
        ("no final mark\nsecond line", ["no final mark", "second line"]),
        ("   ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_lines_and_paragraphs_functions() -> None:
    assert split_lines("  a \n\n b\r\nc") == ["a", "b", "c"]
    assert split_paragraphs("a\nb\n \nc\r\n\r\nd  e") == ["a b", "c", "d e"]


# --- errors: file and line in every message -----------------------------------------------------


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    src = write(tmp_path / "latin1.txt", "ok\nfine\n".encode() + "café\n".encode("latin-1"))
    message = read_error(src)
    assert f"{src}:3" in message and "UTF-8" in message


def test_invalid_utf8_in_a_directory_file(tmp_path: Path) -> None:
    write(tmp_path / "d" / "good.txt", "fine")
    bad = write(tmp_path / "d" / "sub" / "bad.md", b"line\n\xff\xfe oops\n")
    assert f"{bad}:2" in read_error(tmp_path / "d")


def test_nul_bytes_are_a_binary_file(tmp_path: Path) -> None:
    src = write(tmp_path / "bin.txt", b"text\nmore\x00\x01\x02\n")
    message = read_error(src)
    assert f"{src}:2" in message and "binary" in message


def test_csv_missing_column(tmp_path: Path) -> None:
    src = write(tmp_path / "m.csv", "id,body\n1,hello\n")
    message = read_error(src)
    assert f"{src}:1" in message and "'text'" in message and "id, body" in message
    assert "'key'" in read_error(src, text_fields=("body",), id_field="key")


def test_csv_ragged_row(tmp_path: Path) -> None:
    src = write(tmp_path / "r.csv", "id,text,lang\n1,ok,en\n2,short\n")
    message = read_error(src)
    assert f"{src}:3" in message and "2 fields" in message and "3" in message


def test_csv_malformed_quoting(tmp_path: Path) -> None:
    src = write(tmp_path / "bad.csv", 'id,text\n1,"closed" then junk\n')
    message = read_error(src)
    assert f"{src}:2" in message and "malformed" in message


def test_csv_unclosed_quote_names_the_line_where_it_opens(tmp_path: Path) -> None:
    rows = "".join(f"{n},row {n}\n" for n in range(3, 50))
    src = write(tmp_path / "open.csv", 'id,text\n1,"never closed\n' + rows)
    assert f"{src}:2:" in read_error(src)


def test_empty_csv_needs_a_header(tmp_path: Path) -> None:
    src = write(tmp_path / "e.csv", "")
    assert "header" in read_error(src)


def test_jsonl_malformed_line(tmp_path: Path) -> None:
    src = write(tmp_path / "m.jsonl", '{"text": "ok"}\n\n{"text": "oops",\n')
    message = read_error(src)
    assert f"{src}:3" in message and "malformed JSON" in message


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    src = write(tmp_path / "a.jsonl", '{"text": "ok"}\n["text", "in a list"]\n')
    message = read_error(src)
    assert f"{src}:2" in message and "object" in message and "list" in message


def test_jsonl_missing_text_field(tmp_path: Path) -> None:
    src = write(tmp_path / "t.jsonl", '{"text": "ok"}\n{"body": "elsewhere"}\n')
    message = read_error(src)
    assert f"{src}:2" in message and "'text'" in message and "--text-field" in message


@pytest.mark.parametrize("value", ['""', "null"])
def test_jsonl_missing_id_value(tmp_path: Path, value: str) -> None:
    src = write(tmp_path / "i.jsonl", f'{{"id": "a", "text": "x"}}\n{{"id": {value}, "text": "y"}}\n')
    message = read_error(src, id_field="id")
    assert f"{src}:2" in message and "'id'" in message


def test_jsonl_absent_id_field(tmp_path: Path) -> None:
    src = write(tmp_path / "i.jsonl", '{"text": "y"}\n')
    assert f"{src}:1" in read_error(src, id_field="_id")


def test_csv_missing_id_value(tmp_path: Path) -> None:
    src = write(tmp_path / "i.csv", "id,text\na,x\n,y\n")
    assert f"{src}:3" in read_error(src, id_field="id")


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    message = read_error(missing)
    assert str(missing) in message and "no such file" in message


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "only-csv" / "x.csv", "text\nx\n")
    for folder in ("empty", "only-csv"):
        message = read_error(tmp_path / folder)
        assert str(tmp_path / folder) in message and ".txt" in message


def test_errors_are_raised_lazily_after_earlier_documents(tmp_path: Path) -> None:
    # Streaming: the good records before a bad line come out first, then the error.
    src = write(tmp_path / "s.jsonl", '{"text": "one"}\n{"text": "two"}\nnot json\n')
    stream = read_documents([src])
    assert [next(stream).text, next(stream).text] == ["one", "two"]
    with pytest.raises(InputError, match=":3:"):
        next(stream)


# --- property: the three line formats agree --------------------------------------------------------

_line_texts = st.lists(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool),
    min_size=1,
    max_size=15,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=_line_texts)
def test_txt_jsonl_and_csv_read_back_the_same_texts(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "t.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        (folder / "t.jsonl").write_text(
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
        )
        with open(folder / "t.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "n"])
            writer.writerows([t, n] for n, t in enumerate(texts))
        for name in ("t.txt", "t.jsonl", "t.csv"):
            docs = read(os.path.join(tmp, name))
            assert [d.text for d in docs] == texts, name
            assert len({d.id for d in docs}) == len(texts)


def test_split_sentences_makes_no_documents_of_list_numbers_and_citations() -> None:
    """Issue 23 item 13: ``1.``, ``[1]`` and bare citations were documents of their own."""
    text = (
        "Steps:\n1. Mix the flour. 2. Add water.\n3)\nBake it.\n"
        "Bread goes stale [1]. It dries out [2, 3].\n[4]\n(Smith et al., 2020).\n"
        "서울에 갑니다. 네.\n42."
    )
    assert split_sentences(text) == [
        "Steps:",
        "1. Mix the flour.",
        "2. Add water.",
        "3) Bake it.",
        "Bread goes stale [1].",
        "It dries out [2, 3].",
        "서울에 갑니다.",
        "네.",
    ]
    assert split_sentences("It costs 5. Fig. 3 shows it.") == ["It costs 5.", "Fig. 3 shows it."]
