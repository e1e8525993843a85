"""The Korean analyzer (bigrams + kiwipiepy content morphemes): tokens, threads, the choice at
build, the manifest's checked settings, migration of a bigram-only index, the missing extra."""

from __future__ import annotations

import json
import math
import threading
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.store.lexical import morphemes
from simsearch.store.lexical.analyzer import Analyzer, choose, describe
from simsearch.errors import IndexCorruptError, SimsearchError
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store import lexical
from simsearch.store.generation import Store

pytest.importorskip("kiwipiepy", reason="the korean extra (kiwipiepy) is not installed")

korean = Analyzer(morphemes="kiwi")
standard = Analyzer()


def morphs(text: str) -> list[str]:
    """The morpheme terms the Korean analyzer adds to the standard ones."""
    tokens, base = korean(text), standard(text)
    assert tokens[: len(base)] == base  # the standard tokens first, unchanged
    return tokens[len(base) :]


def test_particles_and_endings_drop_and_stems_stay() -> None:
    assert morphs("서울에서 지하철을 탔다") == ["서울", "지하철", "타"]
    assert set(morphs("서울로")) == {"서울"} and set(morphs("서울은")) == {"서울"}
    assert "먹" in morphs("먹었습니다") and "먹" in morphs("먹는")


def test_mixed_hangul_latin_and_digits() -> None:
    tokens = korean("아이폰15를 샀다 iPhone 15 Pro")
    assert tokens[: len(standard("아이폰15를 샀다 iPhone 15 Pro"))] == standard(
        "아이폰15를 샀다 iPhone 15 Pro"
    )
    assert {"아이폰", "15", "iphon", "pro", "사"} <= set(tokens)
    assert "SN" not in tokens and not any(t.isdigit() for t in morphs("아이폰15를"))  # digits: word path only


def test_hanja_keeps_its_bigrams_and_gains_the_word() -> None:
    tokens = korean("大韓民國 헌법 제1조")
    assert {"大韓", "韓民", "民國", "헌법"} <= set(tokens)
    assert "大韓民國" in morphs("大韓民國 헌법 제1조")


def test_spacing_variants_share_their_bigrams() -> None:
    # Kiwi keeps a compound whole ("지하철역"), so across spacing the bigrams are what meet
    assert {"지하", "하철"} <= set(korean("지하철역")) & set(korean("지하철 역"))
    assert {"서울", "지하", "하철"} <= set(korean("서울지하철을")) & set(korean("서울 지하철"))


@pytest.mark.parametrize("text", ["", "The running dogs", "東京タワー", "😀 a", "2020 BTS"])
def test_text_without_hangul_is_analysed_as_standard_and_loads_no_model(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(morphemes, "_analyzer", lambda: pytest.fail("Kiwi ran on text without Hangul"))
    assert korean(text) == standard(text)
    assert korean.many([text, text]) == [standard(text)] * 2


def test_batch_equals_one_by_one_and_threads_agree() -> None:
    texts = [
        "서울에서 지하철 타는 방법",
        "교통카드는 편의점에서 충전할 수 있습니다",
        "plain English",
        "김치찌개 맛집",
    ] * 8
    expected = [korean(t) for t in texts]
    assert korean.many(texts) == expected
    results: dict[int, list[list[str]]] = {}

    def work(n: int) -> None:
        results[n] = [korean(t) for t in texts]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[n] == expected for n in range(4))


def test_settings_round_trip_and_report() -> None:
    settings = korean.settings()
    assert settings["name"] == "simsearch-korean" and settings["morphemes"] == "kiwi"
    assert Analyzer.from_settings(settings) == korean
    assert "kiwipiepy" in describe(settings) and "simsearch-korean v1" in describe(settings)
    assert standard.settings() == {  # English indexes record exactly what they did before
        "name": "simsearch-standard",
        "version": 1,
        "language": "english",
        "stopwords": "lucene-en",
        "cjk": "bigram",
        "min_word_length": 2,
    }


def test_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose("auto", ["plain text", "서울 지하철"]) == korean
    assert choose("auto", ["plain text"]) == standard
    assert choose("standard", ["서울"]) == standard and choose("korean") == korean
    with pytest.raises(SimsearchError, match="unknown analyzer 'klingon'"):
        choose("klingon")
    monkeypatch.setattr(morphemes, "available", lambda: False)
    assert choose("auto", ["서울 지하철"]) == standard  # no extra: auto falls back
    with pytest.raises(SimsearchError, match=r"pip install -e '\.\[korean\]'"):
        choose("korean")


# --- the manifest's lexical section is checked value by value -------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"analyzer": {"language": "klingon"}}, "language 'klingon' is not a Snowball stemmer"),
        ({"analyzer": {"min_word_length": "2"}}, "min_word_length '2' is not a whole number"),
        ({"analyzer": {"min_word_length": True}}, "min_word_length True"),
        ({"analyzer": {"stopwords": ["a"]}}, "stopwords"),
        ({"analyzer": {"version": "1"}}, "unknown to this simsearch"),
        ({"ranking": {"k1": "abc"}}, "k1 'abc' is not a number"),
        ({"ranking": [1]}, "bad 'lexical.ranking'.*not an object"),
        ({"ranking": {"k1": -1}}, "k1 -1"),
        ({"ranking": {"k1": 1e9}}, "k1 1000000000.0"),
        ({"ranking": {"b": 2}}, "b 2 is not a number from 0 to 1"),
        ({"ranking": {"k1": math.nan}}, "k1 nan"),
        ({"ranking": {"function": "tfidf"}}, "function 'tfidf'"),
    ],
)
def test_bad_lexical_settings_are_one_line_corrupt_errors(change: dict, message: str) -> None:
    section = lexical.new_settings()
    for key, value in change.items():
        section[key] = {**section[key], **value} if isinstance(value, dict) else value
    with pytest.raises(IndexCorruptError, match=message) as caught:
        lexical.analyzer_of({"lexical": section})
    assert "\n" not in str(caught.value)


def test_a_hand_edited_manifest_fails_the_search_with_one_line(index_dir: Path, fake_encoder) -> None:
    index = Index.build(["서울 지하철", "bread"], "edited", fake_encoder, index_dir=index_dir)
    manifest_file = index.path / "manifest.json"
    data = json.loads(manifest_file.read_text())
    data["lexical"]["ranking"]["k1"] = "abc"
    manifest_file.write_text(json.dumps(data))
    index.close()
    runner = CliRunner()
    from simsearch.cli.main import main

    out = runner.invoke(main, ["query", "edited", "서울", "--mode", "lexical"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert out.output.startswith("Error: bad 'lexical.ranking' in the manifest (k1 'abc' is not a number")
    assert len(out.output.strip().splitlines()) == 1
    fixed = runner.invoke(main, ["reindex-lexical", "edited"])  # the fix the message names
    assert fixed.exit_code == 0, fixed.output
    assert runner.invoke(main, ["query", "edited", "서울", "--mode", "lexical"]).exit_code == 0


# --- build, migration, the missing extra ---------------------------------------------------------

DOCS = [
    Document("transit", "서울에서는 교통카드로 지하철과 버스를 탈 수 있다", {}),
    Document("chess", "체스에서 폰이 마지막 줄에 도달하면 다른 기물로 승진한다", {}),
    Document("kimchi", "김치찌개는 묵은지로 끓여야 맛있다", {}),
    Document("en", "bread keeps fresh in a cool place", {}),
]


def tokens_of(index: Index) -> dict[str, str]:
    with closing(Store.open(index.path)) as store:
        return dict(
            store.db.execute("SELECT d.id, l.tokens FROM documents d JOIN lexical l ON l.rowid = d.rowid")
        )


def test_auto_build_picks_korean_and_queries_meet_documents_across_particles(
    index_dir: Path, fake_encoder
) -> None:
    index = Index.build(DOCS, "ko", fake_encoder, index_dir=index_dir)
    assert index.manifest["lexical"]["analyzer"]["name"] == "simsearch-korean"
    # "교통카드를" (object particle) never occurs in the text; its morpheme does
    assert index.search("교통카드를", k=1, mode="lexical")[0].id == "transit"
    english = Index.build([d for d in DOCS if d.id == "en"], "en", fake_encoder, index_dir=index_dir)
    assert english.manifest["lexical"]["analyzer"]["name"] == "simsearch-standard"
    index.close()
    english.close()


@pytest.mark.parametrize("shards", [None, 2])
def test_a_bigram_only_index_migrates_with_reindex_lexical(index_dir: Path, fake_encoder, shards) -> None:
    index = Index.build(DOCS, "old", fake_encoder, index_dir=index_dir, analyzer="standard", shards=shards)
    assert index.manifest["lexical"]["analyzer"]["name"] == "simsearch-standard"
    assert index.search("폰은", k=4, mode="lexical") == []  # the bigram "폰은" is in no text
    index.reindex_lexical()  # None keeps the kind: still standard
    assert index.manifest["lexical"]["analyzer"]["name"] == "simsearch-standard"
    generation = index.reindex_lexical("korean")
    assert index.manifest["generation"] == generation
    assert index.manifest["lexical"]["analyzer"]["name"] == "simsearch-korean"
    assert [h.id for h in index.search("폰은", k=4, mode="lexical")] == ["chess"]  # the noun 폰
    assert index.verify().ok
    index.reindex_lexical()  # None keeps korean
    assert index.manifest["lexical"]["analyzer"]["name"] == "simsearch-korean"
    index.close()


def test_plain_index_tokens_are_the_korean_analysis(index_dir: Path, fake_encoder) -> None:
    index = Index.build(DOCS, "tok", fake_encoder, index_dir=index_dir, analyzer="korean")
    assert tokens_of(index) == {d.id: " ".join(korean(d.text)) for d in DOCS}
    index.add([Document("new", "부산에서 기차를 탔다", {})])
    assert tokens_of(index)["new"] == " ".join(korean("부산에서 기차를 탔다"))
    index.close()


def test_missing_extra_gives_a_one_line_hint(
    index_dir: Path, fake_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    Index.build(DOCS, "ko", fake_encoder, index_dir=index_dir, analyzer="korean").close()
    monkeypatch.setattr(morphemes, "available", lambda: False)
    index = Index.open("ko")
    with pytest.raises(SimsearchError, match=r"Korean analyzer.*pip install -e '\.\[korean\]'"):
        index.search("서울", mode="lexical")
    with pytest.raises(SimsearchError, match="kiwipiepy"):
        Index.build(DOCS, "ko2", fake_encoder, index_dir=index_dir, analyzer="korean")
    assert not (index_dir / "ko2").exists()
    index.close()
    from simsearch.cli.main import main

    out = CliRunner().invoke(main, ["query", "ko", "서울", "--mode", "lexical"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert out.output.startswith("Error:") and "pip install -e '.[korean]'" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_cli_build_names_the_analyzer_and_reindex_lexical_switches_it(
    tmp_path: Path, index_dir: Path, tiny_bert: Path
) -> None:
    from simsearch.cli.main import main

    source = tmp_path / "ko.jsonl"
    source.write_text(
        "\n".join(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) for d in DOCS) + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    built = runner.invoke(
        main, ["build", str(source), "--name", "ko", "--model", str(tiny_bert), "--id-field", "id"]
    )
    assert built.exit_code == 0, built.output
    assert "lexical part: simsearch-korean v1" in built.output  # auto saw Hangul
    moved = runner.invoke(main, ["reindex-lexical", "ko", "--analyzer", "standard"])
    assert moved.exit_code == 0 and "with simsearch-standard v1" in moved.output
    hits = runner.invoke(main, ["query", "ko", "폰은", "--mode", "lexical", "--json"])
    assert hits.exit_code == 0 and hits.output == ""  # bigrams alone: no match
    back = runner.invoke(main, ["reindex-lexical", "ko", "--analyzer", "korean"])
    assert back.exit_code == 0 and "with simsearch-korean v1" in back.output
    hits = runner.invoke(main, ["query", "ko", "폰은", "--mode", "lexical", "--json"])
    assert [json.loads(line)["id"] for line in hits.output.splitlines()] == ["chess"]
    bad = runner.invoke(main, ["build", str(source), "--name", "x", "--analyzer", "klingon"])
    assert bad.exit_code == 2 and "klingon" in bad.output
