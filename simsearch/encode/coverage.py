"""How well a model's vocabulary covers a text: the share of its letters and digits the
tokenizer keeps as real vocabulary pieces (punctuation and spaces count neither way).

A character counts as covered when it lies in a token that is not the unknown token and that
spans at least one whole character on its own. Characters the tokenizer drops to ``[UNK]``, or
shreds into several pieces each (the default English model decomposes Hangul syllables into
jamo), are not covered. English text under an English model scores ~1.0, Korean under it ~0.
Used by :mod:`simsearch.search.fusion` to weigh the dense ranking per query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def backend_tokenizer(encoder: Encoder) -> Any:
    """The ``tokenizers.Tokenizer`` behind an encoder (torch or ONNX), or None."""
    tokenizer = getattr(encoder, "_tokenizer", None)  # the ONNX query encoder
    if tokenizer is None:
        loaded = getattr(encoder, "_loaded", None)
        tokenizer = getattr(getattr(loaded, "tokenizer", None), "backend_tokenizer", None)
    return tokenizer


def coverage(encoder: Encoder, texts: Sequence[str]) -> list[float]:
    """Covered share of each text's letters and digits (1.0 when it cannot be measured)."""
    tokenizer = backend_tokenizer(encoder)
    if tokenizer is None:
        return [1.0] * len(texts)
    unknown = _unknown_token(tokenizer)
    return [_covered(tokenizer.encode(text, add_special_tokens=False), text, unknown) for text in texts]


def _unknown_token(tokenizer: Any) -> str | None:
    model = getattr(tokenizer, "model", None)
    return getattr(model, "unk_token", None)


def _covered(encoding: Any, text: str, unknown: str | None) -> float:
    total = sum(1 for ch in text if ch.isalnum())
    if total == 0:
        return 1.0
    pieces: dict[tuple[int, int], int] = {}
    for start, end in encoding.offsets:
        pieces[(start, end)] = pieces.get((start, end), 0) + 1
    covered: set[int] = set()
    for token, (start, end) in zip(encoding.tokens, encoding.offsets):
        if token == unknown or end <= start or pieces[(start, end)] > 1:
            continue  # [UNK], or one of several pieces of the same character(s)
        covered.update(i for i in range(start, end) if text[i].isalnum())
    return min(1.0, len(covered) / total)
