"""Token ids cut at the model's limit, with the rows that were cut (simsearch.encode.tokens)."""

from __future__ import annotations

from transformers import AutoTokenizer

from simsearch.encode.tokens import CHARS_PER_TOKEN, clip_text, token_ids


def test_clip_text_cuts_at_a_space_within_the_budget() -> None:
    assert clip_text("short", 10) == "short"
    assert clip_text("one two three four", 9) == "one two"
    assert clip_text("x" * 30, 10) == "x" * 10  # no space: cut at the budget


def test_cut_rows_are_the_ones_over_the_limit(tiny_bert) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    limit = 8
    fits = "one two three four five six"  # 6 words + [CLS] [SEP] = 8 tokens (if one token a word)
    whole = tokenizer(fits)["input_ids"]
    over = fits + " seven"
    ids, cut = token_ids(tokenizer, ["", fits, over], limit)
    assert ids[1] == whole and len(whole) <= limit
    assert cut == ([2] if len(tokenizer(over)["input_ids"]) > limit else [])
    assert all(len(seq) <= limit for seq in ids)
    assert ids[2][-1] == tokenizer.sep_token_id  # cut, with its closing token


def test_a_clipped_text_that_fits_after_all_is_tokenized_whole(tiny_bert) -> None:
    """A long run of spaces is clipped away before tokenizing; the text then fits, so it is
    tokenized whole (its last word included), not cut."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    limit = 8
    text = "bread" + " " * (limit + 1) * CHARS_PER_TOKEN + "cat"
    ids, cut = token_ids(tokenizer, [text], limit)
    assert cut == [] and ids[0] == tokenizer(text)["input_ids"]


def test_only_the_ids_are_asked_for() -> None:
    asked: list[dict] = []

    def tokenizer(texts, **kwargs):
        asked.append(kwargs)
        return {"input_ids": [[101, 7, 102] for _ in texts]}

    ids, cut = token_ids(tokenizer, ["a", "b"], 8)
    assert ids == [[101, 7, 102]] * 2 and cut == []
    assert asked and all(not k["return_attention_mask"] and not k["return_token_type_ids"] for k in asked)
