"""Tests for simsearch.eval.datasets and retrieval_views: small files under tmp_path, then the
real shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simsearch.errors import InputError
from simsearch.eval.datasets import (
    BeirDoc,
    StsPair,
    doc_text,
    load_beir,
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
    read_sts,
)
from simsearch.eval.retrieval_views import load_korquad


@pytest.fixture
def shared_data() -> Path:
    """The project's shared evaluation data (``../shared/data`` beside the repo), or skip."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared evaluation data not found at {path} (only in the project workspace)")
    return path


def write(path: Path, text: str, *, bom: bool = False, newline: str = "\n") -> Path:
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


# --- STS ------------------------------------------------------------------------------------

STSB_ROWS = (
    "main-captions\tMSRvid\t2012test\t0001\t5.000\t"
    "A plane is taking off.\tAn air plane is taking off.\n"
    'main-news\theadlines\t2013\t0002\t1.25\tHe said "no.\tShe said yes"\tlicence\tsource\n'
)


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_read_sts_benchmark_layout(tmp_path: Path, bom: bool, newline: str) -> None:
    path = write(tmp_path / "sts-test.csv", STSB_ROWS, bom=bom, newline=newline)
    assert read_sts(path) == [
        StsPair("A plane is taking off.", "An air plane is taking off.", 5.0),
        # Stray quotes kept verbatim; the two extra licence columns are ignored.
        StsPair('He said "no.', 'She said yes"', 1.25),
    ]


@pytest.mark.parametrize("bom", [False, True])
def test_read_korsts_layout_with_header(tmp_path: Path, bom: bool) -> None:
    text = (
        "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
        'main-captions\tMSRvid\t2012test\t0001\t5.000\t비행기가 "이륙한다.\t'
        "비행기가 이륙하고 있다.\n"
        "\n"  # a blank line is skipped
        "main-news\theadlines\t2013\t0002\t0.000\t가\t나"  # no final newline, like KorSTS
    )
    pairs = read_sts(write(tmp_path / "sts-dev.tsv", text, bom=bom, newline="\r\n"))
    assert pairs == [
        StsPair('비행기가 "이륙한다.', "비행기가 이륙하고 있다.", 5.0),
        StsPair("가", "나", 0.0),
    ]


def test_read_sts_header_columns_found_by_name(tmp_path: Path) -> None:
    text = "score\tsentence2\tsentence1\n4.5\tsecond\tfirst\n"
    assert read_sts(write(tmp_path / "x.tsv", text)) == [StsPair("first", "second", 4.5)]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("main-news\theadlines\t2013\t0003\t2.0\tonly one sentence", "at least 7"),
        ("main-news\theadlines\t2013\t0003\tabc\tone\ttwo", "'abc' is not a number"),
        ("main-news\theadlines\t2013\t0003\tnan\tone\ttwo", "is not a number"),
    ],
)
def test_read_sts_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, message: str) -> None:
    path = write(tmp_path / "sts-bad.csv", STSB_ROWS + bad_row + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_sts(path)
    assert "sts-bad.csv" in str(info.value)
    assert "line 3" in str(info.value)


def test_read_sts_bad_encoding_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(STSB_ROWS.encode() + "x\tx\tx\tx\t1\tcafé\tb\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv, line 3: not valid UTF-8"):
        read_sts(path)
    with pytest.raises(InputError, match=r"nope\.csv"):
        read_sts(tmp_path / "nope.csv")


# --- BEIR -----------------------------------------------------------------------------------


def make_beir(root: Path) -> Path:
    docs = [
        {"_id": "d1", "title": "Title", "text": "Body one.", "metadata": {}},
        {"_id": "d2", "title": "", "text": "Body two."},  # empty title
        {"_id": 3, "text": " Body three. "},  # no title, numeric id
    ]
    queries = [
        {"_id": "q1", "text": "first?", "metadata": {"d1": []}},
        {"_id": "q2", "text": "second?", "metadata": {}},
        {"_id": "q3", "text": "train only?"},
    ]
    write(root / "corpus.jsonl", "".join(json.dumps(d) + "\n" for d in docs))
    write(root / "queries.jsonl", "".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir()
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\t3\t0\n"
    write(root / "qrels" / "test.tsv", qrels, newline="\r\n")  # CRLF as SciFact's
    write(root / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq3\td1\t1\n")
    return root


def test_read_beir_corpus_and_doc_text(tmp_path: Path) -> None:
    corpus = read_beir_corpus(make_beir(tmp_path) / "corpus.jsonl")
    assert corpus == {
        "d1": BeirDoc("Title", "Body one."),
        "d2": BeirDoc("", "Body two."),
        "3": BeirDoc("", " Body three. "),
    }
    assert doc_text(corpus["d1"]) == "Title Body one."
    assert doc_text(corpus["d2"]) == "Body two."  # no leading space from the empty title
    assert doc_text(corpus["3"]) == "Body three."


def test_load_beir_restricts_queries_to_split(tmp_path: Path) -> None:
    corpus, queries, qrels = load_beir(make_beir(tmp_path))
    assert len(corpus) == 3
    assert queries == {"q1": "first?", "q2": "second?"}
    assert qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "3": 0}}
    assert load_beir(tmp_path, split="train").queries == {"q3": "train only?"}
    with pytest.raises(InputError, match="available splits: test, train"):
        load_beir(tmp_path, split="dev")


def test_load_beir_qrels_query_missing_from_queries(tmp_path: Path) -> None:
    root = make_beir(tmp_path)
    write(root / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq404\td1\t1\n")
    with pytest.raises(InputError, match=r"absent from .*queries\.jsonl.*'q404'"):
        load_beir(root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": "d9", "text": "unterminated', "not valid JSON"),
        ('["not", "an", "object"]', '"_id"'),
        ('{"_id": "d9", "title": "no text"}', '"text" must be a string'),
        ('{"_id": "d1", "text": "again"}', "duplicate _id 'd1'"),
    ],
)
def test_read_beir_corpus_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "corpus.jsonl", '{"_id": "d1", "text": "ok"}\n\n' + line + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_beir_corpus(path)
    assert "corpus.jsonl, line 3" in str(info.value)


def test_read_beir_queries_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "ok"}\n{"_id": "q2"}\n')
    with pytest.raises(InputError, match=r"queries\.jsonl, line 2"):
        read_beir_queries(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [("q2\td2", "expected 3 tab-separated columns"), ("q2\td2\thigh", "'high' is not an integer")],
)
def test_read_qrels_bad_row(tmp_path: Path, row: str, message: str) -> None:
    text = f"query-id\tcorpus-id\tscore\nq1\td1\t1\n{row}\n"
    path = write(tmp_path / "test.tsv", text, newline="\r\n")
    with pytest.raises(InputError, match=message) as info:
        read_qrels(path)
    assert "test.tsv, line 3" in str(info.value)


def test_read_qrels_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "q1\td1\t1\nq1\td2\t0\n")
    assert read_qrels(path) == {"q1": {"d1": 1, "d2": 0}}


# --- KorQuAD --------------------------------------------------------------------------------


def squad(articles: list[dict]) -> str:
    return json.dumps({"version": "test", "data": articles}, ensure_ascii=False, indent=1)


def qa(qid: str, question: str) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": "x", "answer_start": 0}]}


def test_load_korquad_merges_identical_contexts(tmp_path: Path) -> None:
    articles = [
        {
            "title": "서울",
            "paragraphs": [
                {"context": "첫 문단", "qas": [qa("a1", "질문1?"), qa("a2", "질문2?")]},
                {"context": "둘째 문단", "qas": [qa("a3", "질문3?")]},
                {"context": "첫 문단", "qas": [qa("a4", "질문4?")]},  # same text as #0
            ],
        },
        {"title": "부산", "paragraphs": [{"context": "부산 문단", "qas": [qa("b1", "질문5?")]}]},
    ]
    corpus, queries, qrels = load_korquad(write(tmp_path / "dev.json", squad(articles)))
    assert corpus == {
        "서울#0": BeirDoc("서울", "첫 문단"),
        "서울#1": BeirDoc("서울", "둘째 문단"),
        "부산#0": BeirDoc("부산", "부산 문단"),
    }
    assert queries["a4"] == "질문4?" and len(queries) == 5
    assert qrels["a4"] == {"서울#0": 1}  # the duplicate's question points at the kept twin
    assert qrels["b1"] == {"부산#0": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"data": [\n{"title": "x",\n', r"dev\.json, line 3: not valid"),
        ('{"version": "x"}', '"data" list'),
        (squad([{"title": "t", "paragraphs": [{"qas": []}]}]), r"data\[0\]\.paragraphs\[0\]"),
        (
            squad([{"title": "t", "paragraphs": [{"context": "c", "qas": [qa("a", "?")] * 2}]}]),
            "question id 'a' appears twice",
        ),
        (  # two articles with the same title would give two paragraphs the id t#0
            squad([{"title": "t", "paragraphs": [{"context": c, "qas": []}]} for c in "xy"]),
            "share the id 't#0'",
        ),
    ],
)
def test_load_korquad_bad_file(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_korquad(write(tmp_path / "dev.json", content))
    assert "dev.json" in str(info.value)


# --- the real shared data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "count"),
    [
        ("stsbenchmark/sts-train.csv", 5749),
        ("stsbenchmark/sts-dev.csv", 1500),
        ("stsbenchmark/sts-test.csv", 1379),
        ("korsts/sts-train.tsv", 5749),
        ("korsts/sts-dev.tsv", 1500),
        ("korsts/sts-test.tsv", 1379),
    ],
)
def test_real_sts_counts(shared_data: Path, relpath: str, count: int) -> None:
    pairs = read_sts(shared_data / relpath)
    assert len(pairs) == count
    assert all(0.0 <= p.score <= 5.0 and p.sentence1 and p.sentence2 for p in pairs)


def test_real_korsts_aligns_with_sts_benchmark(shared_data: Path) -> None:
    english = read_sts(shared_data / "stsbenchmark" / "sts-test.csv")
    korean = read_sts(shared_data / "korsts" / "sts-test.tsv")
    assert [p.score for p in english] == [p.score for p in korean]
    assert english[0] == StsPair("A girl is styling her hair.", "A girl is brushing her hair.", 2.5)


def test_real_scifact_counts(shared_data: Path) -> None:
    corpus, queries, qrels = load_beir(shared_data / "scifact", split="test")
    assert len(corpus) == 5183
    assert len(queries) == len(qrels) == 300
    assert sum(len(docs) for docs in qrels.values()) == 339
    assert all(doc in corpus for docs in qrels.values() for doc in docs)
    assert len(read_beir_queries(shared_data / "scifact" / "queries.jsonl")) == 1109
    train = read_qrels(shared_data / "scifact" / "qrels" / "train.tsv")
    assert (len(train), sum(len(docs) for docs in train.values())) == (809, 919)


def test_real_korquad_counts(shared_data: Path) -> None:
    path = shared_data / "korquad_v1_dev" / "KorQuAD_v1.0_dev.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert sum(len(article["paragraphs"]) for article in raw["data"]) == 964
    corpus, queries, qrels = load_korquad(path)
    # 964 paragraphs, 961 distinct texts: 마음작용 #3-#5 and 김영삼 #36/#46 are identical.
    assert len(corpus) == 961
    assert "김영삼#36" in corpus and "김영삼#46" not in corpus
    assert len(queries) == len(qrels) == 5774
    assert all(len(docs) == 1 and next(iter(docs)) in corpus for docs in qrels.values())
