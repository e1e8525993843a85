"""Vocabulary coverage of a query, per model tokenizer (the fusion's dense weight)."""

from __future__ import annotations

import pytest

from simsearch.encode.coverage import coverage


def test_default_model_covers_english_not_hangul(bundled_encoder) -> None:
    english, korean, mixed = coverage(
        bundled_encoder, ["how do I keep bread fresh?", "서울에서 지하철 타는 방법", "BTS 노래"]
    )
    assert english == pytest.approx(1.0)
    assert korean == 0.0
    assert mixed == pytest.approx(3 / 5)  # B, T, S of B T S 노 래


def test_unknown_and_known_words_of_a_tiny_vocab(tiny_bert) -> None:
    from simsearch.encode.torch_encoder import Encoder

    encoder = Encoder(str(tiny_bert), "mean")
    assert coverage(encoder, ["the cat sat", "zzzz", "cat zzzz?"]) == [1.0, 0.0, pytest.approx(3 / 7)]


def test_encoder_without_tokenizer_counts_as_covered(fake_encoder) -> None:
    assert coverage(fake_encoder, ["anything", ""]) == [1.0, 1.0]
