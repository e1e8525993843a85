"""End to end on the bundled real model: the library's three-line promise, English and Korean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simsearch import Hit, Index, ReadOptions, read_documents

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.jsonl"


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, bundled_encoder) -> Index:
    docs = read_documents([SAMPLE], ReadOptions(id_field="id"))
    return Index.build(docs, tmp_path_factory.mktemp("e2e") / "sample", bundled_encoder)


def test_three_lines_of_python(tmp_path: Path, bundled_encoder) -> None:
    index = Index.build(
        ["The cat sat on the mat.", "Stocks fell sharply on Monday."],
        tmp_path / "mini",
        encoder=bundled_encoder,
    )
    hits = index.search("Where did the cat sit?", k=1)
    assert hits == [Hit(1, "1", hits[0].score, "The cat sat on the mat.", {}, hits[0].cosine, hits[0].bm25)]
    assert len(index) == 2


def test_paraphrase_finds_its_sentence(sample_index: Index) -> None:
    hits = sample_index.search("What should I do so my loaf doesn't dry out?", k=3)
    assert hits[0].id in {"en-013", "en-122", "en-027"}
    assert hits[0].metadata["topic"] == "cooking"
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score


def test_exact_korean_sentence_finds_itself(sample_index: Index) -> None:
    korean = [
        json.loads(line)
        for line in SAMPLE.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["lang"] == "ko"
    ]
    for record in korean[:20]:
        top = sample_index.search(record["text"], k=1)[0]
        assert top.id == record["id"] and top.score == pytest.approx(1.0, abs=1e-4)


def test_many_queries_in_one_call(sample_index: Index) -> None:
    results = sample_index.search(["learning to program", "서울 지하철"], k=2)
    assert len(results) == 2 and all(len(hits) == 2 for hits in results)
    assert results[0][0].metadata["topic"] == "programming"


def test_reopened_in_a_new_process_gives_the_same_hits(sample_index: Index) -> None:
    query = "the best way to learn a programming language"
    here = [(h.id, round(h.score, 5)) for h in sample_index.search(query, k=5)]
    script = (
        "import json, sys; from simsearch import Index; "
        f"hits = Index.open(sys.argv[1]).search({query!r}, k=5); "
        "print(json.dumps([(h.id, round(h.score, 5)) for h in hits]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(sample_index.path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    there = json.loads(out.stdout)
    # A fresh process may embed the query with the ONNX export instead of torch: same ids,
    # scores equal to within float32 noise.
    assert [x[0] for x in there] == [h[0] for h in here]
    assert [x[1] for x in there] == pytest.approx([h[1] for h in here], abs=1e-4)
