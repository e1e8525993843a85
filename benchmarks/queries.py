"""Query latency (warm, end to end) and cold CLI start-up, simsearch vs doing it by hand."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np

from .stats import percentile, summary, table, timed


def warm_latency(
    home: Path, name: str, queries: list[str], vectors: np.ndarray, rounds: int, log=print
) -> list[str]:
    """p50/p90 of single queries: embed + search + fetch texts, per backend, 1 query at a time."""
    from simsearch import Index

    fast = Index.open(name, index_dir=home)
    kind = fast.manifest["index_type"]
    runners = {f"simsearch, ONNX Runtime query encoder ({kind} index)": lambda q: fast.search(q, k=10)}
    encoder = fast.encoder
    runners["  of which: embedding the query"] = lambda q: encoder.encode([q])
    one = encoder.encode([queries[0]])
    runners["  of which: FAISS search + fetching 10 texts"] = lambda q: fast.search_vectors(one, 10)
    os.environ["SIMSEARCH_QUERY_BACKEND"] = "torch"
    try:
        slow = Index.open(name, index_dir=home)
        slow.encoder  # noqa: B018 - load the torch encoder now, not inside the timing
    finally:
        del os.environ["SIMSEARCH_QUERY_BACKEND"]
    runners[f"simsearch, torch query encoder ({kind} index)"] = lambda q: slow.search(q, k=10)
    runners.update(_by_hand(vectors, str(fast.manifest["model_path"])))
    rows = []
    for label, fn in runners.items():
        for q in queries[:10]:
            fn(q)
        per_round = []
        for _ in range(rounds):
            times = [timed(partial(fn, q)) for q in queries]
            per_round.append((percentile(times, 50), percentile(times, 90)))
        p50, p90 = [r[0] for r in per_round], [r[1] for r in per_round]
        rows.append([label, summary(p50, 1000, 2), summary(p90, 1000, 2)])
        log(f"latency: {label.strip()} done")
    return [
        f"{len(fast)} documents, {len(queries)} distinct real queries per round, k=10, "
        f"{rounds} rounds (median, min-max of each round's percentile).",
        "",
    ] + table(["single query, warm", "p50 ms", "p90 ms"], rows)


def _by_hand(vectors: np.ndarray, model_path: str) -> dict:
    """sentence-transformers encode + a FAISS IndexFlatIP, texts from a Python list."""
    import faiss
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    texts = [str(i) for i in range(len(vectors))]

    def search(q: str) -> list[str]:
        v = st.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        _, ids = flat.search(v, 10)
        return [texts[i] for i in ids[0]]

    def numpy_exact(q: str) -> np.ndarray:
        return np.argpartition(-(vectors @ one[0]), 10)[:10]

    one = st.encode(["warm up"], normalize_embeddings=True, convert_to_numpy=True)
    faiss.omp_set_num_threads(faiss.omp_get_max_threads())
    return {
        "sentence-transformers encode + FAISS IndexFlatIP (by hand, default threads)": search,
        "  numpy exact scan of the same vectors (search only)": numpy_exact,
    }


def cold_cli(home: Path, name: str, query: str, rounds: int, log=print) -> list[str]:
    """Wall time of fresh ``simsearch`` processes (what a shell user waits for)."""
    exe = shutil.which("simsearch") or str(Path(sys.executable).with_name("simsearch"))
    env = {**os.environ, "SIMSEARCH_INDEX_DIR": str(home)}
    cases = {
        "simsearch --help": ([exe, "--help"], env),
        f'simsearch query {name} "..." (ONNX Runtime path)': ([exe, "query", name, query], env),
        f'simsearch query {name} "..." (torch path)': (
            [exe, "query", name, query],
            {**env, "SIMSEARCH_QUERY_BACKEND": "torch"},
        ),
    }
    rows = []
    for label, (cmd, case_env) in cases.items():
        subprocess.run(cmd, env=case_env, capture_output=True, check=True)  # page cache warm
        walls, cpus = [], []
        for _ in range(rounds):
            before = os.times()
            walls.append(timed(lambda: subprocess.run(cmd, env=case_env, capture_output=True, check=True)))
            after = os.times()
            cpus.append(
                after.children_user + after.children_system - before.children_user - before.children_system
            )
        rows.append([label, summary(walls, 1, 2), summary(cpus, 1, 2)])
        log(f"cold CLI: {label} done")
    return [
        f"Fresh process each time, {rounds} rounds (median, min-max). CPU = user + system time "
        "of the process: on a machine shared with other jobs the wall time also counts waiting "
        "for a core.",
        "",
    ] + table(["command", "wall s", "CPU s"], rows)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000
