"""Encoder throughput: simsearch at each precision vs sentence-transformers vs txtai, one run."""

from __future__ import annotations

import statistics
from functools import partial

import numpy as np

from .stats import summary, table, timed


def run(texts: list[str], rounds: int, log=print) -> list[str]:
    """Sentences per second of every variant, rounds interleaved so load drifts hit all alike."""
    from simsearch.encode.torch_encoder import Encoder

    variants = {p: Encoder(precision=p) for p in ("fp32", "bf16", "int8")}
    model_path = str(variants["fp32"].model_path)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    runners = {
        "sentence-transformers encode(batch_size=32)": lambda: st.encode(
            texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
    }
    for precision, encoder in variants.items():
        runners[f"simsearch --precision {precision}"] = partial(encoder.encode, texts)
    txtai_runner = _txtai(model_path, texts)
    if txtai_runner is not None:
        runners["txtai Embeddings.index (same model path)"] = txtai_runner
    outputs = {name: fn() for name, fn in runners.items()}  # warm-up round, also the vectors
    reference = outputs["simsearch --precision fp32"]
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds):
        for name, fn in runners.items():
            seconds[name].append(timed(fn))
        log(f"encoders: round {round_ + 1}/{rounds} done")
    peer = seconds["sentence-transformers encode(batch_size=32)"]
    rows = []
    for name, times in seconds.items():
        rate = [len(texts) / t for t in times]
        ratio = [p / t for p, t in zip(peer, times)]  # same-round ratio: load cancels out
        vectors = outputs[name]
        if isinstance(vectors, np.ndarray) and vectors.shape == reference.shape:
            cosine = np.sum(vectors * reference, axis=1)
            quality = f"{cosine.mean():.5f} / {cosine.min():.5f}"
        else:
            quality = "n/a"
        rows.append(
            [
                name,
                summary(rate, digits=0),
                f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})",
                quality,
            ]
        )
    return [
        f"{len(texts)} sentences drawn at random from the 131k corpus, {rounds} rounds "
        "(median, min-max), default model, all threads.",
        "",
    ] + table(["encoder", "sentences/s", "vs sentence-transformers", "cosine to fp32 (mean / min)"], rows)


def _txtai(model_path: str, texts: list[str]):
    try:
        from txtai.embeddings import Embeddings
    except ImportError:
        return None
    data = [(i, text, None) for i, text in enumerate(texts)]

    def index() -> None:  # encode + txtai's own FAISS index, in memory
        Embeddings(path=model_path, backend="faiss", content=False).index(data)

    return index
