"""The query table keeps the part of a long id that tells it apart (both ends, middle elided)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.cli.render import cut_middle, display_width, hits_table
from simsearch.index import Hit

PREFIX = "docs/handbook/chapter-07/section-"


def _hit(rank: int, doc_id: str) -> Hit:
    return Hit(rank, doc_id, 0.5, "some text", {}, 0.5, None)


def test_long_ids_that_differ_at_the_end_stay_distinct_in_the_table() -> None:
    ids = [f"{PREFIX}{n}.md:{line}" for n, line in ((1, 10), (1, 11), (2, 10))]
    lines = hits_table([_hit(i, doc_id) for i, doc_id in enumerate(ids, 1)], width=100)
    shown = [line.split()[2] for line in lines[1:]]
    assert len(set(shown)) == 3, shown  # cutting the end made all three "docs/handbook/chapter-0…"
    assert all(s.startswith("docs/hand") and "…" in s for s in shown)
    assert [s.endswith(doc_id[-5:]) for s, doc_id in zip(shown, ids)] == [True] * 3


def test_cut_middle_fits_the_width_with_wide_characters() -> None:
    assert cut_middle("short", 24) == "short"
    text = "서울/지하철/" * 6 + "노선-2호선"
    for width in (3, 4, 9, 10, 24):
        got = cut_middle(text, width)
        assert display_width(got) <= width and "…" in got
    assert cut_middle(text, 24).endswith("2호선")
    assert cut_middle("abcdefghij", 5) == "ab…ij"
    assert cut_middle("abcdefghij", 2) == "a…"
    assert cut_middle("line\x1bone\nend-of-a-long-identifier", 12).count("\x1b") == 0  # escaped


def test_query_table_through_the_cli(tiny_bert: Path, index_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    rows = [{"id": f"{PREFIX}{n}.md", "text": text} for n, text in ((1, "the cat sat"), (2, "the cat ran"))]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    runner = CliRunner()
    built = runner.invoke(
        main, ["build", str(corpus), "--name", "ids", "--id-field", "id", "--model", str(tiny_bert)]
    )
    assert built.exit_code == 0, built.output
    result = runner.invoke(main, ["query", "ids", "the cat", "-k", "2"])
    assert result.exit_code == 0, result.output
    head, *shown_rows = result.output.splitlines()
    column = head.split().index("id")  # after rank, score (and in hybrid mode cosine, bm25)
    shown = {line.split()[column] for line in shown_rows}
    assert {s[-4:] for s in shown} == {"1.md", "2.md"}


def test_hybrid_tables_show_both_sides_beside_the_score() -> None:
    hits = [Hit(1, "a", 0.71, "bread", {}, 0.62, 7.5), Hit(2, "b", 0.3, "oven", {}, 0.6, None)]
    head, first, second = hits_table(hits, width=80)
    assert head.split() == ["rank", "score", "cosine", "bm25", "id", "text"]
    assert first.split()[:5] == ["1", "0.710", "0.620", "7.50", "a"]
    assert second.split()[:5] == ["2", "0.300", "0.600", "-", "b"]
    # one side only (dense or lexical mode): the score is that side's, no extra columns
    assert hits_table([_hit(1, "a")], width=80)[0].split() == ["rank", "score", "id", "text"]
