"""Encoder throughput: simsearch at each precision vs sentence-transformers vs txtai, one run.

Every row also says how much GEMM work a sentence is (from the model's shapes and the measured
token counts) and what share of this CPU's GEMM peak at the row's precision that rate is, with
the peak measured in the same rounds (:mod:`benchmarks.ceiling`). A share above 100% raises.
"""

from __future__ import annotations

import statistics
from functools import partial
from typing import Any, Callable

import numpy as np

from .ceiling import (
    GemmPeaks,
    Shapes,
    check_share,
    clock_for,
    gflop_per_sentence,
    machine_line,
    padded_gflop_per_sentence,
    timed,
)
from .stats import summary, table

PEER = "sentence-transformers encode(batch_size=32)"
COMPILED = "simsearch --precision bf16, compiled (large builds)"


def run(texts: list[str], rounds: int, log=print, threads: int = 1) -> list[str]:
    """Sentences per second of every variant on ``threads`` threads, rounds interleaved (GEMM
    peaks included) so load drifts hit all alike."""
    import torch
    from transformers import AutoConfig

    from simsearch.encode.onnx_export import prepare
    from simsearch.encode.torch_encoder import Encoder

    from simsearch import config

    torch.set_num_threads(threads)
    config.freeze_heap_when_ready()  # as the CLI does: encoders freeze what they set up
    start_line = machine_line(threads)
    variants = {p: Encoder(precision=p, compile=False) for p in ("fp32", "bf16", "int8")}
    for encoder in variants.values():
        prepare(encoder)  # the ONNX exports a build makes (fp32 and int8 builds encode through theirs)
    # What a large bf16 build switches to (simsearch.encode.compiled); compiled in the warm-up.
    compiled = Encoder(precision="bf16", compile=True)
    model_path = str(variants["fp32"].model_path)
    shapes = Shapes.of(AutoConfig.from_pretrained(model_path))
    lengths = [len(ids) for ids in variants["fp32"].tokenize(texts)[0]]
    useful = gflop_per_sentence(shapes, lengths)
    padded = padded_gflop_per_sentence(shapes, lengths, variants["fp32"].batch_size)
    runners: dict[str, tuple[str, Callable[[], Any]]] = {
        PEER: ("fp32", _sentence_transformers(model_path, texts))
    }
    for precision, encoder in variants.items():
        runners[f"simsearch --precision {precision}"] = (precision, partial(encoder.encode, texts))
        if precision == "bf16":
            runners[COMPILED] = ("bf16", partial(compiled.encode, texts))
    txtai_runner = _txtai(model_path, texts)
    if txtai_runner is not None:
        runners["txtai Embeddings.index (same model path)"] = ("fp32", txtai_runner)
    outputs = {name: fn() for name, (_, fn) in runners.items()}  # warm-up round, also the vectors
    peaks = GemmPeaks(threads)
    clock = clock_for(threads)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds):
        peaks.measure()
        for name, (_, fn) in runners.items():
            seconds[name].append(timed(fn, clock))
        log(f"encoders: round {round_ + 1}/{rounds} done ({threads} thread(s))")
    rows = [
        _row(name, precision, seconds, peaks, len(texts), useful, outputs)
        for name, (precision, _) in runners.items()
    ]
    return (
        [
            f"{len(texts)} sentences drawn at random from the 131k corpus, mean {np.mean(lengths):.1f} "
            f"tokens; {rounds} interleaved rounds (median, min-max), default model, {threads} thread(s); "
            + (
                "timed in process CPU seconds (a rate per busy core)."
                if threads == 1
                else "timed in wall seconds."
            ),
            "",
            f"- before: {start_line}",
            f"- after: {machine_line(threads)}",
            f"- GEMM work: {useful:.3f} GFLOP a sentence at its own token count ({shapes.layers} layers, "
            f"hidden {shapes.hidden}, intermediate {shapes.intermediate}); {padded:.3f} as simsearch "
            f"batches it (sorted by length, at most {variants['fp32'].batch_size} rows and a padded-token "
            f"budget, each padded to its longest): padding adds {padded / useful - 1:.1%}.",
            "- heap: frozen once each encoder is set up, as in the `simsearch` command "
            "(`simsearch.config.freeze_heap_when_ready`), for every row alike.",
            "- share of peak: the row's useful GFLOP/s over the fastest measured GEMM at its precision "
            "in the same round (table below), median (min-max) over rounds.",
            "",
        ]
        + table(
            [
                "encoder",
                "precision",
                "sentences/s",
                "vs sentence-transformers",
                "GFLOP/s (useful)",
                "share of GEMM peak",
                "cosine to fp32 (mean / min)",
            ],
            rows,
        )
        + [""]
        + peaks.lines()
    )


def _row(
    name: str,
    precision: str,
    seconds: dict[str, list[float]],
    peaks: GemmPeaks,
    count: int,
    useful: float,
    outputs: dict[str, Any],
) -> list[str]:
    times = seconds[name]
    rate = [count / t for t in times]
    ratio = [p / t for p, t in zip(seconds[PEER], times)]  # same-round ratio: load cancels out
    shares = [r * useful / peaks.peak(precision, i) for i, r in enumerate(rate)]
    # The least disturbed encoder round against the least disturbed peak: above 1 is impossible.
    check_share(name, max(rate) * useful / peaks.peak(precision))
    reference = outputs["simsearch --precision fp32"]
    vectors = outputs[name]
    if isinstance(vectors, np.ndarray) and vectors.shape == reference.shape:
        cosine = np.sum(vectors * reference, axis=1)
        quality = f"{cosine.mean():.5f} / {cosine.min():.5f}"
    else:
        quality = "n/a"
    return [
        name,
        precision,
        summary(rate, digits=0),
        f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})",
        summary([r * useful for r in rate], digits=0),
        f"{statistics.median(shares):.0%} ({min(shares):.0%}-{max(shares):.0%})",
        quality,
    ]


def _sentence_transformers(model_path: str, texts: list[str]) -> Callable[[], Any]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    return lambda: st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)


def _txtai(model_path: str, texts: list[str]):
    try:
        from txtai.embeddings import Embeddings
    except ImportError:
        return None
    data = [(i, text, None) for i, text in enumerate(texts)]

    def index() -> None:  # encode + txtai's own FAISS index, in memory
        Embeddings(path=model_path, backend="faiss", content=False).index(data)

    return index
