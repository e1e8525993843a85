"""The benchmark corpus: 131k English sentences from ../shared/data, and their cached vectors.

The sentences are CC BY 4.0 NLTK corpora (see ``en_sentences_nltk_ccby/SOURCE.md``). Vectors are
encoded once with the default model and cached under ``benchmarks/results/`` (git-ignored), in
chunks so an interrupted run resumes where it stopped. On CPUs with AVX-512 bf16 units they are
encoded at bf16 (cosine 0.99995 to fp32 on this corpus, measured in the encoder table; twice as
fast there, and the ANN and latency measurements depend on the distribution of real embeddings,
not on the last decimal). Elsewhere bf16 is emulated and ~6x slower than fp32 (AVX2 EPYC: 22 vs
129 sentences/s), so the cache is encoded at fp32; each precision has its own cache folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "en_sentences_nltk_ccby" / "sentences.tsv"
RESULTS = ROOT / "benchmarks" / "results"
_CHUNK = 4096


def cache_precision() -> str:
    """bf16 where the CPU (as this process sees it) has native bf16 units, fp32 elsewhere."""
    from .stats import cpu_flag_set

    return "bf16" if {"avx512_bf16", "amx_bf16"} & cpu_flag_set() else "fp32"


def sentences(limit: int | None = None) -> list[str]:
    """The corpus in file order (``csv.QUOTE_NONE``: the file holds no quoting)."""
    if not DATA.is_file():
        raise SystemExit(f"benchmark corpus not found at {DATA} (../shared/data beside the repo)")
    with DATA.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        texts = [row[3] for row in rows]
    return texts[:limit] if limit else texts


def sample(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences drawn at random (a realistic mix of the four sources)."""
    texts = sentences()
    picks = np.random.default_rng(seed).choice(len(texts), n, replace=False)
    return [texts[i] for i in picks]


def shuffled() -> list[str]:
    """The corpus in a fixed random order, so any prefix is a fair sample of all four sources."""
    texts = sentences()
    order = np.random.default_rng(0).permutation(len(texts))
    return [texts[i] for i in order]


def vectors(limit: int | None = None, *, encode: bool = True, log=print) -> tuple[list[str], np.ndarray]:
    """Texts and unit vectors (``cache_precision()`` encoder) of the first ``limit`` shuffled sentences (all by default).

    Encoded once with the default model and cached; with ``encode=False`` only what is already
    cached is returned (a prefix of the shuffled corpus).
    """
    texts = shuffled()
    limit = min(limit or len(texts), len(texts))
    precision = cache_precision()
    parts = RESULTS / f"vector-parts-{precision}"
    parts.mkdir(parents=True, exist_ok=True)
    encoder = None
    arrays = []
    for start in range(0, limit, _CHUNK):
        part = parts / f"{start:07d}.npy"
        if not part.is_file():
            if not encode:
                break
            if encoder is None:
                from simsearch.encode.torch_encoder import Encoder

                encoder = Encoder(precision=precision)
            staged = part.with_suffix(".tmp.npy")
            np.save(staged, encoder.encode(texts[start : start + _CHUNK]))
            staged.replace(part)  # a reader never sees half a part
            log(f"encoded {min(start + _CHUNK, len(texts))}/{len(texts)} sentences", flush=True)
        arrays.append(np.load(part))
    data = np.concatenate(arrays)[:limit] if arrays else np.zeros((0, 384), np.float32)
    return texts[: len(data)], data


if __name__ == "__main__":
    print(vectors()[1].shape)
