"""STS: Spearman x100 between the cosine of two sentences and the gold score, as MTEB reports it."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from simsearch.errors import InputError
from simsearch.eval.datasets import read_sts
from simsearch.eval.encoder import encoder_fields, make_encoder
from simsearch.eval.metrics import spearman

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def evaluate_sts(
    files: Sequence[str | os.PathLike[str]], encoder: Encoder | None = None, **encoder_options: Any
) -> dict[str, Any]:
    """Spearman x100 of cosine vs gold score, per file and over all pairs of ``files`` together.

    Returns ``{"spearman", "pairs", "files": [{"file", "pairs", "spearman"}], "model",
    "pooling", "max_length"}``; ``spearman`` is None when every cosine is equal.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise InputError("no STS file given")
    sets = [(str(f), read_sts(f)) for f in files]
    for name, pairs in sets:
        if len(pairs) < 2:
            raise InputError(f"{name}: holds {len(pairs)} sentence pair(s); Spearman needs at least 2")
        if len({p.score for p in pairs}) < 2:
            raise InputError(f"{name}: every gold score is the same; Spearman is undefined")
    encoder = make_encoder(encoder, encoder_options)
    per_file = []
    all_gold: list[float] = []
    all_cosine: list[float] = []
    for name, pairs in sets:
        cosine = _pair_cosines(encoder, [p.sentence1 for p in pairs], [p.sentence2 for p in pairs])
        gold = [p.score for p in pairs]
        per_file.append({"file": name, "pairs": len(pairs), "spearman": _spearman100(gold, cosine)})
        all_gold += gold
        all_cosine += cosine.tolist()
    overall = per_file[0]["spearman"] if len(sets) == 1 else _spearman100(all_gold, all_cosine)
    return {"spearman": overall, "pairs": len(all_gold), "files": per_file, **encoder_fields(encoder)}


def _pair_cosines(encoder: Encoder, left: list[str], right: list[str]) -> np.ndarray:
    """Cosine of each (left, right) pair; each distinct sentence is encoded once."""
    unique = list(dict.fromkeys(left + right))
    position = {text: i for i, text in enumerate(unique)}
    vectors = encoder.encode(unique)
    a = vectors[[position[t] for t in left]]
    b = vectors[[position[t] for t in right]]
    return np.einsum("ij,ij->i", a, b).astype(np.float64)  # unit rows: inner product = cosine


def _spearman100(gold: Sequence[float], predicted: Sequence[float] | np.ndarray) -> float | None:
    value = spearman(gold, predicted)
    return None if math.isnan(value) else 100.0 * value
