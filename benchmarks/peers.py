"""simsearch vs chromadb vs LanceDB: build throughput, warm query p50, on-disk bytes per document.

Same model (simsearch's default, the bundled all-MiniLM-L6-v2 directory), same corpus, same
machine, one run. Neither peer runs offline with its defaults: Chroma's default embedding
function downloads an ONNX export of all-MiniLM-L6-v2 on first use, and LanceDB embeds nothing
unless told to. Both are given the same local model directory through sentence-transformers, the
embedding integration each one ships: Chroma's ``SentenceTransformerEmbeddingFunction(
model_name=DIR)`` and LanceDB's ``get_registry().get("sentence-transformers").create(name=DIR)``.
Chroma's telemetry is switched off (no network here). Each engine keeps its default index: Chroma
HNSW (cosine space, as simsearch's scores are cosines), LanceDB none (an exact scan; an IVF-PQ
index is an explicit ``create_index`` call), simsearch ``auto`` (HNSW past 20,000 documents,
tuned to recall@10 0.95).

- **Build**: ``build_docs`` sentences through each engine's own text API (encode + store + index),
  into a fresh directory, after a small warm-up build (model load, simsearch's ONNX export).
- **Query**: an index of ``query_docs`` documents per engine holding the *same* cached real
  vectors (``prebuilt.extend``), inserted as vectors, so no engine re-encodes 100k sentences;
  queries are distinct real sentences embedded live by each engine's own embedding path, k=10,
  texts returned. The engines take turns on every query (rotating order), so load drifts hit all
  alike; the ratio is taken per query. Also the search alone (precomputed query vector).
- **Bytes per document**: the engine's directory on disk after the query build, over the count.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np

from .stats import percentile, table, timed

ENGINES = ("simsearch", "chromadb", "lancedb")


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Chroma:
    name = "chromadb"

    def __init__(self, path: Path, model_dir: str) -> None:
        import chromadb
        from chromadb.config import Settings
        from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

        self.path = path
        self.client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self.embed = SentenceTransformerEmbeddingFunction(
            model_name=model_dir, device="cpu", normalize_embeddings=True
        )
        self.collection = self.client.create_collection(
            "bench", embedding_function=cast(Any, self.embed), metadata={"hnsw:space": "cosine"}
        )

    def add_texts(self, texts: list[str]) -> None:
        step = self.client.get_max_batch_size()
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            self.collection.add(ids=[str(start + i) for i in range(len(chunk))], documents=chunk)

    def add_vectors(self, texts: list[str], vectors: np.ndarray) -> None:
        step = self.client.get_max_batch_size()
        for start in range(0, len(texts), step):
            end = min(start + step, len(texts))
            self.collection.add(
                ids=[str(i) for i in range(start, end)],
                documents=texts[start:end],
                embeddings=vectors[start:end],
            )

    def query(self, text: str) -> object:
        return self.collection.query(query_texts=[text], n_results=10)

    def query_vector(self, vector: np.ndarray) -> object:
        return self.collection.query(query_embeddings=[vector], n_results=10)

    def count(self) -> int:
        return int(self.collection.count())


class Lance:
    name = "lancedb"

    def __init__(self, path: Path, model_dir: str) -> None:
        import lancedb
        from lancedb.embeddings import get_registry
        from lancedb.pydantic import LanceModel, Vector

        self.path = path
        self.db = lancedb.connect(str(path))
        self.embed = get_registry().get("sentence-transformers").create(name=model_dir, device="cpu")
        embed = self.embed

        class Row(LanceModel):  # text embedded by LanceDB's registry function, on add and on query
            text: str = embed.SourceField()
            vector: Vector(embed.ndims()) = embed.VectorField()  # type: ignore[valid-type]

        self.table = self.db.create_table("bench", schema=Row)

    def add_texts(self, texts: list[str]) -> None:
        for start in range(0, len(texts), 4096):
            self.table.add([{"text": t} for t in texts[start : start + 4096]])

    def add_vectors(self, texts: list[str], vectors: np.ndarray) -> None:
        import pyarrow as pa

        for start in range(0, len(texts), 8192):
            chunk = np.ascontiguousarray(vectors[start : start + 8192], dtype=np.float32)
            flat = pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), chunk.shape[1])
            self.table.add(pa.table({"text": texts[start : start + 8192], "vector": flat}))

    def query(self, text: str) -> object:
        return self.table.search(text).limit(10).to_list()  # embedded by the registry function

    def query_vector(self, vector: np.ndarray) -> object:
        return self.table.search(vector).limit(10).to_list()

    def count(self) -> int:
        return int(self.table.count_rows())


def _simsearch_build(path: Path, texts: list[str]) -> int:
    from simsearch import Index
    from simsearch.encode.torch_encoder import Encoder

    return len(Index.build(texts, "bench", Encoder(), index_dir=path, force=True))


def _peer(name: str, path: Path, model_dir: str) -> Chroma | Lance:
    return Chroma(path, model_dir) if name == "chromadb" else Lance(path, model_dir)


def build_throughput(texts: list[str], model_dir: str, rounds: int, log=print) -> dict[str, list[float]]:
    """Sentences per second of each engine's own build from texts, rounds interleaved."""
    rates: dict[str, list[float]] = {e: [] for e in ENGINES}
    with tempfile.TemporaryDirectory(prefix="simsearch-peers-") as tmp:
        for round_ in range(-1, rounds):  # round -1: warm-up on 64 sentences, not counted
            batch = texts[:64] if round_ < 0 else texts
            for engine in ENGINES:
                path = Path(tmp) / f"{engine}-{round_ + 1}"
                if engine == "simsearch":
                    seconds = timed(lambda: _simsearch_build(path, batch))
                else:
                    seconds = timed(lambda: _peer(engine, path, model_dir).add_texts(batch))
                if round_ >= 0:
                    rates[engine].append(len(batch) / seconds)
            log(f"peers: build round {round_ + 1}/{rounds} done")
    return rates


def query_latency(
    texts: list[str], vectors: np.ndarray, queries: list[str], model_dir: str, log=print
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Per engine, per-query times (live embedding, and search alone) and bytes per document."""
    from simsearch import Index

    from . import prebuilt

    times: dict[str, dict[str, list[float]]] = {e: {"live": [], "vector": []} for e in ENGINES}
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="simsearch-peers-") as tmp:
        prebuilt.build("bench", Path(tmp) / "simsearch", texts, vectors)
        index = Index.open("bench", index_dir=Path(tmp) / "simsearch")
        unique = list(dict.fromkeys(texts))  # simsearch keeps one document per distinct text
        keep = np.array(sorted({t: i for i, t in reversed(list(enumerate(texts)))}.values()))
        engines: dict[str, tuple[Callable[[str], object], Callable[[np.ndarray], object]]] = {
            "simsearch": (lambda q: index.search(q, k=10), lambda v: index.search_vectors(v[None, :], 10))
        }
        sizes["simsearch"] = _disk_bytes(Path(tmp) / "simsearch" / "bench") / len(index)
        for name in ENGINES[1:]:
            peer = _peer(name, Path(tmp) / name, model_dir)
            peer.add_vectors(unique, vectors[keep])
            engines[name] = (peer.query, peer.query_vector)
            sizes[name] = _disk_bytes(Path(tmp) / name) / peer.count()
            log(f"peers: {name} holds {peer.count()} documents")
        query_vectors = index.encoder.encode(queries)
        for q, v in zip(queries[:10], query_vectors):  # warm-up
            for live, by_vector in engines.values():
                live(q), by_vector(v)
        for n, (q, v) in enumerate(zip(queries, query_vectors)):
            order = ENGINES[n % 3 :] + ENGINES[: n % 3]
            for name in order:
                live, by_vector = engines[name]
                times[name]["live"].append(timed(lambda: live(q)))
                times[name]["vector"].append(timed(lambda: by_vector(v)))
        log("peers: queries done")
    return times, sizes


def run(
    build_texts: list[str],
    doc_texts: list[str],
    doc_vectors: np.ndarray,
    real: int,
    queries: list[str],
    rounds: int,
    log=print,
) -> list[str]:
    from simsearch.encode.models import bundled_model_path

    model_dir = str(bundled_model_path())
    rates = build_throughput(build_texts, model_dir, rounds, log)
    times, sizes = query_latency(doc_texts, doc_vectors, queries, model_dir, log)
    rows = []
    for engine in ENGINES:
        rate = statistics.median(rates[engine])
        build_ratio = statistics.median(r / s for r, s in zip(rates[engine], rates["simsearch"]))
        live = times[engine]["live"]
        by_vector = times[engine]["vector"]
        live_ratio = statistics.median(t / s for t, s in zip(live, times["simsearch"]["live"]))
        vector_ratio = statistics.median(t / s for t, s in zip(by_vector, times["simsearch"]["vector"]))
        rows.append(
            [
                engine,
                f"{rate:.0f} ({min(rates[engine]):.0f}-{max(rates[engine]):.0f})",
                f"{build_ratio:.2f}x",
                f"{percentile(live, 50) * 1000:.2f}",
                f"{live_ratio:.2f}x",
                f"{percentile(by_vector, 50) * 1000:.2f}",
                f"{vector_ratio:.2f}x",
                f"{sizes[engine]:,.0f}",
                f"{sizes[engine] / sizes['simsearch']:.2f}x",
            ]
        )
    head = (
        f"Build: {len(build_texts):,} sentences of the shuffled corpus through each engine's text API, "
        f"{rounds} rounds (median, min-max). Query: {len(doc_texts):,} rows ({real:,} real cached "
        f"vectors{', the rest synthetic neighbours (benchmarks/prebuilt.py)' if len(doc_texts) > real else ''}), "
        f"{len(queries)} distinct real sentences as single queries, k=10, engines interleaved per query; "
        "ratios are per-query medians of engine time / simsearch time (build: simsearch rate / engine rate "
        "inverted: engine rate / simsearch rate)."
    )
    return [head, ""] + table(
        [
            "engine",
            "build sentences/s",
            "build rate vs simsearch",
            "query p50 ms (embed + search + texts)",
            "query time vs simsearch",
            "search-only p50 ms (vector given)",
            "search-only time vs simsearch",
            "bytes/document on disk",
            "size vs simsearch",
        ],
        rows,
    )
