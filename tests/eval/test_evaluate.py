"""simsearch.eval.evaluate and `simsearch eval`: STS, retrieval, KorQuAD and ANN recall, end to end.

Quality checks run the real default model on slices of the shared benchmarks (a few hundred
pairs / documents, so the suite stays fast); plumbing checks use tiny_bert or fake encoders.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.errors import IndexNotFoundError, InputError
from simsearch.eval.datasets import BeirDoc, RetrievalSet, read_qrels
from simsearch.eval.evaluate import (
    evaluate_ann,
    evaluate_beir,
    evaluate_korquad,
    evaluate_retrieval,
    evaluate_sts,
    load_retrieval_set,
)
from simsearch.index import Index
from simsearch.readers import Document

from tests.fakes import FakeEncoder

RETRIEVAL_KEYS = {"ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "queries", "model", "pooling"}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


class TableEncoder(FakeEncoder):
    """Known vectors for known sentences: the expected cosines are exact."""

    dim = 2

    def __init__(self, angles: dict[str, float]) -> None:
        self.vectors = {t: np.array([np.cos(a), np.sin(a)], dtype=np.float32) for t, a in angles.items()}

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        return np.stack([self.vectors[t] for t in texts]), 0


class RandomEncoder(FakeEncoder):
    """A random unit vector per distinct text (seeded by the text): no two texts tie."""

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        rows = []
        for text in texts:
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
            v = rng.normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32), 0


# --- STS ------------------------------------------------------------------------------------


def sts_row(score: float, a: str, b: str) -> str:
    return f"main-captions\tMSRvid\t2012test\t0001\t{score}\t{a}\t{b}"


def test_sts_pairs_each_sentence_with_its_partner(tmp_path: Path) -> None:
    # "x" sits at angle 0; partners at growing angles have falling cosines.
    angles = {"x": 0.0, "p1": 0.1, "p2": 0.5, "p3": 1.0, "p4": 1.5}
    rows = [sts_row(5, "x", "p1"), sts_row(3.5, "p2", "x"), sts_row(2, "x", "p3"), sts_row(0.5, "p4", "x")]
    file = write_lines(tmp_path / "sts-test.csv", rows)
    report = evaluate_sts([file], TableEncoder(angles))
    assert report["spearman"] == pytest.approx(100.0)
    assert report["pairs"] == 4
    assert report["files"] == [{"file": str(file), "pairs": 4, "spearman": report["spearman"]}]
    flipped = [sts_row(5 - float(r.split("\t")[4]), *r.split("\t")[5:]) for r in rows]
    reversed_gold = write_lines(tmp_path / "rev.csv", flipped)
    assert evaluate_sts([reversed_gold], TableEncoder(angles))["spearman"] == pytest.approx(-100.0)


def test_sts_on_sts_benchmark_slice_with_default_model(
    shared_data: Path, bundled_encoder, tmp_path: Path
) -> None:
    lines = (shared_data / "stsbenchmark" / "sts-test.csv").read_text(encoding="utf-8").splitlines()[:200]
    file = write_lines(tmp_path / "sts-head.csv", lines)
    report = evaluate_sts([file], bundled_encoder)
    assert report["pairs"] == 200
    assert report["model"] == "sentence-transformers/all-MiniLM-L6-v2" and report["pooling"] == "mean"
    # all-MiniLM-L6-v2 scores 82 on the whole test set; these MSRvid captions are easier.
    assert 75.0 < report["spearman"] < 97.0


def test_cli_sts_tiny_model_matches_library(tiny_bert: Path, tmp_path: Path) -> None:
    from simsearch.encode.torch_encoder import Encoder

    rows = [
        sts_row(5.0, "the cat sat on the mat.", "a cat sat on a mat."),
        sts_row(0.4, "the cat sat on the mat.", "how to keep bread fresh?"),
        sts_row(2.5, "search engine query", "a fast search engine"),
        sts_row(1.0, "korean word", "the dog is good"),
        sts_row(3.8, "서울 지하철은 편리하다.", "서울 지하철은 편리하다"),
    ]
    one = write_lines(tmp_path / "one.csv", rows[:3])
    header = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"  # KorSTS layout
    two = write_lines(tmp_path / "two.tsv", [header, *rows[2:]])
    result = invoke("eval", "sts", str(one), str(two), "--model", str(tiny_bert), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    expected = evaluate_sts([one, two], Encoder(str(tiny_bert)))
    assert report["spearman"] == pytest.approx(expected["spearman"])
    assert [f["pairs"] for f in report["files"]] == [3, 3] and report["pairs"] == 6
    assert report["model"] == str(tiny_bert) and report["pooling"] == "pooler"
    table = invoke("eval", "sts", str(one), str(two), "--model", str(tiny_bert), "--pooling", "mean")
    assert table.exit_code == 0, table.output
    assert "pooling mean" in table.output and "all" in table.output and str(two) in table.output


def test_sts_precision_reaches_the_encoder(shared_data: Path, tmp_path: Path) -> None:
    """--precision int8 evaluates the int8 encoder (not fp32 under another name)."""
    lines = (shared_data / "stsbenchmark" / "sts-test.csv").read_text(encoding="utf-8").splitlines()[:100]
    file = write_lines(tmp_path / "sts-head.csv", lines)
    reports = {}
    for precision in ("fp32", "int8"):
        result = invoke("eval", "sts", str(file), "--precision", precision, "--json")
        assert result.exit_code == 0, result.output
        reports[precision] = json.loads(result.output)
    assert reports["int8"]["precision"] == "int8" and reports["fp32"]["precision"] == "fp32"
    assert reports["int8"]["spearman"] != reports["fp32"]["spearman"]  # other vectors, other ranks
    assert abs(reports["int8"]["spearman"] - reports["fp32"]["spearman"]) < 3.0
    assert invoke("eval", "sts", str(file), "--precision", "fp16").exit_code == 2


def test_sts_errors(tmp_path: Path) -> None:
    missing = invoke("eval", "sts", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and "Error:" in missing.output and "nope.csv" in missing.output
    bad = write_lines(tmp_path / "bad.csv", [sts_row(1, "a", "b"), "main\tMSRvid\t2012\t0002\t4.0\tonly one"])
    result = invoke("eval", "sts", str(bad))
    assert result.exit_code == 1 and "line 2" in result.output and "Traceback" not in result.output
    flat = write_lines(tmp_path / "flat.csv", [sts_row(1, "a", "b"), sts_row(1, "c", "d")])
    with pytest.raises(InputError, match="gold score is the same"):
        evaluate_sts([flat], TableEncoder({}))
    assert invoke("eval", "sts").exit_code == 2


# --- retrieval ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 SciFact test queries, their relevant abstracts and 150 other abstracts, BEIR layout."""
    source = shared_data / "scifact"
    qrels = read_qrels(source / "qrels" / "test.tsv")
    chosen = dict(list(qrels.items())[:20])
    relevant = {d for rels in chosen.values() for d in rels}
    corpus = [line for line in (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    others = [line for line in corpus if json.loads(line)["_id"] not in relevant][:150]
    keep = [line for line in corpus if json.loads(line)["_id"] in relevant] + others
    queries = [
        line
        for line in (source / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line and json.loads(line)["_id"] in chosen
    ]
    folder = tmp_path_factory.mktemp("scifact-subset")
    write_lines(folder / "corpus.jsonl", keep)
    write_lines(folder / "queries.jsonl", queries)
    (folder / "qrels").mkdir()
    write_lines(
        folder / "qrels" / "test.tsv",
        ["query-id\tcorpus-id\tscore"]
        + [f"{q}\t{d}\t{s}" for q, rels in chosen.items() for d, s in rels.items()],
    )
    return folder


@pytest.fixture(scope="module")
def scifact_report(scifact_subset: Path, bundled_encoder) -> dict:
    return evaluate_beir(scifact_subset, encoder=bundled_encoder)


def test_retrieval_library_on_scifact_subset(scifact_report: dict) -> None:
    report = scifact_report
    assert report["queries"] == 20 and report["k"] == 100
    assert report["model"] == "sentence-transformers/all-MiniLM-L6-v2" and report["max_length"] == 256
    # Full SciFact gives nDCG@10 0.645; with ~175 documents instead of 5183 it can only be easier.
    assert 0.6 < report["ndcg@10"] <= 1.0 and report["recall@100"] > 0.9
    assert report["recall@10"] <= report["recall@100"] and report["mrr@10"] >= report["map@100"] * 0.5
    rows = report["per_query"]
    assert len(rows) == 20 and all(row["query"] for row in rows)
    assert np.mean([row["ndcg@10"] for row in rows]) == pytest.approx(report["ndcg@10"])


def test_retrieval_cli_matches_library(
    scifact_subset: Path,
    scifact_report: dict,
    tmp_path: Path,
    index_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    per_query = tmp_path / "rows.jsonl"
    result = invoke("eval", "retrieval", str(scifact_subset), "--json", "--per-query", str(per_query))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert RETRIEVAL_KEYS <= set(report) and "per_query" not in report
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "queries"):
        assert report[key] == pytest.approx(scifact_report[key], abs=1e-6), key
    rows = [json.loads(line) for line in per_query.read_text(encoding="utf-8").splitlines()]
    assert [r["query_id"] for r in rows] == [r["query_id"] for r in scifact_report["per_query"]]
    # The temporary index leaves nothing behind.
    assert not index_dir.exists() and not (tmp_path / "indexes").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_retrieval_through_existing_index_matches_temporary(
    scifact_subset: Path, tiny_bert: Path, index_dir: Path
) -> None:
    corpus = str(scifact_subset / "corpus.jsonl")
    built = invoke(
        "build",
        corpus,
        "--name",
        "sub",
        "--model",
        str(tiny_bert),
        "--pooling",
        "mean",
        "--text-field",
        "title",
        "--text-field",
        "text",
        "--id-field",
        "_id",
    )
    assert built.exit_code == 0, built.output
    result = invoke(
        "eval",
        "retrieval",
        "--queries",
        str(scifact_subset / "queries.jsonl"),
        "--qrels",
        str(scifact_subset / "qrels" / "test.tsv"),
        "--index",
        "sub",
        "-k",
        "50",
        "--json",
    )
    assert result.exit_code == 0, result.output
    through_index = json.loads(result.output)
    temporary = evaluate_beir(scifact_subset, k=50, model=str(tiny_bert), pooling="mean")
    assert through_index["recall@100"] is None and temporary["recall@100"] is None  # deeper than -k
    for key in ("ndcg@10", "recall@10", "mrr@10", "queries"):
        assert through_index[key] == pytest.approx(temporary[key], abs=1e-6), key
    table = invoke("eval", "retrieval", str(scifact_subset), "--index", "sub", "-k", "50")
    assert table.exit_code == 0 and "nDCG@10" in table.output and "cut deeper" in table.output


def test_retrieval_index_without_corpus_ids_is_refused(scifact_subset: Path, index_dir: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        evaluate_beir(scifact_subset, index="absent")
    Index.build(
        [Document("x1", "unrelated text one"), Document("x2", "unrelated two")], "plain", FakeEncoder()
    )
    index = Index.open("plain", encoder=FakeEncoder())
    with pytest.raises(InputError, match="--id-field _id"):
        evaluate_retrieval(load_retrieval_set(scifact_subset), index=index)


def test_retrieval_split_documents_count_once_at_best_part(tmp_path: Path) -> None:
    corpus = {"d1": BeirDoc("", "cat mat"), "d2": BeirDoc("", "dog")}
    data = RetrievalSet(corpus, {"q": "cat mat"}, {"q": {"d1": 1}})
    parts = ["d1#1", "d1#2", "d2"]
    Index.build(
        [Document(i, t) for i, t in zip(parts, ["cat mat", "cat", "dog"])], tmp_path / "parts", FakeEncoder()
    )
    report = evaluate_retrieval(data, index=Index.open(tmp_path / "parts", encoder=FakeEncoder()), k=10)
    assert report["ndcg@10"] == 1.0 and report["recall@10"] == 1.0 and report["mrr@10"] == 1.0


def test_retrieval_usage_and_input_errors(scifact_subset: Path, tmp_path: Path, index_dir: Path) -> None:
    assert invoke("eval", "retrieval").exit_code == 2
    assert invoke("eval", "retrieval", str(scifact_subset), "--corpus", "c.jsonl").exit_code == 2
    assert invoke("eval", "retrieval", str(scifact_subset), "--index", "x", "--model", "m").exit_code == 2
    unknown = invoke("eval", "retrieval", str(scifact_subset), "--index", "nope")
    assert unknown.exit_code == 1 and "'nope' not found" in unknown.output
    split = invoke("eval", "retrieval", str(scifact_subset), "--split", "dev")
    assert split.exit_code == 1 and "available splits: test" in split.output
    nowhere = invoke(
        "eval", "retrieval", str(scifact_subset), "--per-query", str(tmp_path / "no" / "x.jsonl")
    )
    assert nowhere.exit_code == 1 and "does not exist" in nowhere.output
    assert invoke("eval", "retrieval", str(tmp_path / "absent")).exit_code in (1, 2)
    korquad = invoke("eval", "korquad", str(tmp_path / "KorQuAD.json"))
    assert korquad.exit_code == 1 and "KorQuAD.json" in korquad.output


def test_korquad_paragraph_retrieval(tmp_path: Path) -> None:
    paragraphs = [
        {"context": "cat sat on the mat", "qas": [{"id": "q1", "question": "where cat sat mat"}]},
        {"context": "keep bread fresh", "qas": [{"id": "q2", "question": "how keep bread fresh"}]},
    ]
    file = tmp_path / "korquad.json"
    file.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}), encoding="utf-8")
    report = evaluate_korquad(file, FakeEncoder(), k=10, per_query_file=tmp_path / "rows.jsonl")
    assert report["queries"] == 2 and report["documents"] == 2 and report["recall@10"] == 1.0
    assert len((tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()) == 2


# --- ANN recall -----------------------------------------------------------------------------


@pytest.fixture
def random_index(index_dir: Path) -> Index:
    # Three copies of each text: exact ties that any order may return.
    docs = [Document(f"d{i}-{copy}", f"text number {i}") for i in range(40) for copy in range(3)]
    return Index.build(docs, "rand", RandomEncoder())


def test_ann_flat_index_is_exact(random_index: Index) -> None:
    report = evaluate_ann(random_index, queries=50, k=5)
    assert report["recall@k"] == 1.0 and report["queries"] == 50 and report["k"] == 5
    assert report["documents"] == 120 and report["index_type"] == "flat"
    result = invoke("eval", "ann", "rand", "--queries", "500", "-k", "10", "--json")
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)
    assert cli["recall@k"] == 1.0 and cli["queries"] == 120 and cli["model"] == "fake/bag-of-words"
    table = invoke("eval", "ann", "rand")
    assert table.exit_code == 0 and "recall@10 1.0000" in table.output


def test_ann_counts_what_the_search_misses(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = Index.build([f"distinct text {i}" for i in range(60)], "distinct", RandomEncoder())
    exact = Index.search_vectors

    def skip_best(self, vectors, k=10, *, min_score=None):  # a "search" that loses the top hit
        return [hits[1:] for hits in exact(self, vectors, k + 1)]

    monkeypatch.setattr(Index, "search_vectors", skip_best)
    assert evaluate_ann(index, queries=20, k=4)["recall@k"] == pytest.approx(3 / 4)
    monkeypatch.setattr(
        Index, "search_vectors", lambda self, v, k=10, **kw: [hits[:2] for hits in exact(self, v, k)]
    )
    assert evaluate_ann(index, queries=20, k=4)["recall@k"] == pytest.approx(2 / 4)


def test_ann_errors(index_dir: Path) -> None:
    result = invoke("eval", "ann", "nope")
    assert result.exit_code == 1 and "'nope' not found" in result.output
    assert invoke("eval", "ann", "x", "--queries", "0").exit_code == 2
    with pytest.raises(IndexNotFoundError):
        evaluate_ann("nope")


def test_eval_runs_as_installed_command(tiny_bert: Path, tmp_path: Path) -> None:
    file = write_lines(
        tmp_path / "s.csv",
        [sts_row(5, "the cat", "the cat"), sts_row(0, "the cat", "how to keep bread fresh and good")],
    )
    command = [
        sys.executable,
        "-m",
        "simsearch",
        "eval",
        "sts",
        str(file),
        "--model",
        str(tiny_bert),
        "--pooling",
        "mean",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["spearman"] == pytest.approx(100.0)
