"""Eval modes: reports name the mode and the analyzer; the paraphrase set from STS pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from simsearch.eval.datasets import RetrievalSet
from simsearch.eval.retrieval_views import load_paraphrase
from simsearch.eval.evaluate import evaluate_paraphrase, evaluate_retrieval
from simsearch.errors import InputError

ROWS = [
    ("4.6", "a cat sits on the mat", "the cat is sitting on a mat"),
    ("4.2", "fresh bread in the morning", "bread baked fresh this morning"),
    ("1.0", "a dog runs in the park", "stocks fell sharply today"),
    ("5.0", "same sentence", "same sentence"),  # identical: not a retrieval question
    ("4.0", "the search engine is fast", "a fast engine for search"),
]


@pytest.fixture
def sts_file(tmp_path: Path) -> Path:
    file = tmp_path / "sts-test.csv"
    file.write_text(
        "".join(
            f"main-captions\tMSRvid\t2012test\t{i:04d}\t{s}\t{a}\t{b}\n" for i, (s, a, b) in enumerate(ROWS)
        ),
        encoding="utf-8",
    )
    return file


def test_paraphrase_set_from_sts_pairs(sts_file: Path) -> None:
    data = load_paraphrase(sts_file)
    assert len(data.corpus) == 9  # distinct sentences of the file
    assert sorted(data.queries.values()) == [
        "a cat sits on the mat",
        "fresh bread in the morning",
        "the search engine is fast",
    ]
    assert data.exclude is not None
    for query_id, rels in data.qrels.items():
        (target,) = rels
        assert data.corpus[target].text != data.queries[query_id]
        assert data.corpus[data.exclude[query_id]].text == data.queries[query_id]
    with pytest.raises(InputError, match="no pair with gold score >= 4.9"):
        load_paraphrase(sts_file, min_gold=4.9)  # the only 5.0 pair is two identical sentences


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_paraphrase_report_names_mode_and_analyzer(sts_file: Path, fake_encoder, mode: str) -> None:
    report = evaluate_paraphrase(sts_file, fake_encoder, mode=mode, k=5)
    assert report["mode"] == mode and report["queries"] == 3 and report["documents"] == 9
    assert (report["analyzer"] is None) == (mode == "dense")
    if mode != "dense":
        assert report["analyzer"].startswith("simsearch-standard v1")
    assert 0.0 <= report["recall@1"] <= 1.0
    # the query's own sentence is in the corpus but never credited: recall@1 counts the pair
    assert all(row["recall@1"] in (0.0, 1.0) for row in report["per_query"])


def test_query_sentence_is_excluded_not_counted(sts_file: Path, fake_encoder) -> None:
    # with the bag-of-words encoder the query's own sentence is always its best match
    data = load_paraphrase(sts_file)
    without = evaluate_retrieval(RetrievalSet(data.corpus, data.queries, data.qrels), fake_encoder, k=10)
    with_exclusion = evaluate_retrieval(data, fake_encoder, k=10)
    assert with_exclusion["mrr@10"] > without["mrr@10"]
