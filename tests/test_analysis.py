"""The lexical analyzer: English stems and stop words, CJK bigrams, mixed text, odd input."""

from __future__ import annotations

import pytest

from simsearch.store.lexical.analyzer import Analyzer, describe
from simsearch.errors import IndexCorruptError

analyze = Analyzer()


def test_english_is_case_folded_stemmed_and_stop_words_dropped() -> None:
    assert analyze("The Running DOGS were jumping over the fences") == [
        "run",
        "dog",
        "were",
        "jump",
        "over",
        "fenc",
    ]


def test_punctuation_underscores_and_one_letter_words_split_or_drop() -> None:
    assert analyze("e-mail, snake_case! a b c") == ["mail", "snake", "case"]


def test_korean_runs_become_overlapping_bigrams() -> None:
    assert analyze("서울에서 지하철") == ["서울", "울에", "에서", "지하", "하철"]


def test_single_cjk_character_stays_a_unigram() -> None:
    assert analyze("물 東 ひ") == ["물", "東", "ひ"]


def test_japanese_and_chinese_bigrams() -> None:
    assert analyze("東京タワー") == ["東京", "京タ", "タワ", "ワー"]


def test_mixed_script_text_splits_at_script_boundaries() -> None:
    assert analyze("BTS의 Dynamite는 2020년") == ["bts", "의", "dynamit", "는", "2020", "년"]


def test_full_width_forms_are_normalised() -> None:
    assert analyze("ＡＢＣ Ｔｅｓｔｓ") == ["abc", "test"]


@pytest.mark.parametrize("text", ["", "   ", "😀🎉", "a the of", "!!! ???", "😀 a"])
def test_empty_after_analysis(text: str) -> None:
    assert analyze(text) == []


def test_emoji_between_words_is_a_separator() -> None:
    assert analyze("coffee☕time 🙂 서울😀역") == ["coffe", "time", "서울", "역"]


def test_settings_round_trip_and_name_the_analyzer() -> None:
    custom = Analyzer(language="none", stopwords="none")
    settings = custom.settings()
    assert Analyzer.from_settings(settings) == custom
    assert custom("The dogs") == ["the", "dogs"]
    assert "simsearch-standard v1" in describe(Analyzer().settings())


def test_unknown_analyzer_in_a_manifest_fails_loudly() -> None:
    with pytest.raises(IndexCorruptError, match="unknown to this simsearch"):
        Analyzer.from_settings({"name": "other", "version": 9})
    with pytest.raises(IndexCorruptError, match="bad analyzer settings"):
        Analyzer.from_settings({**Analyzer().settings(), "cjk": "morphemes"})
