"""How fast does `simsearch serve` answer, next to the same search made in-process?

Builds (once, then reuses) an index of N English sentences with the default model, measures
single-query latency in-process (``Index.search``), then starts ``simsearch serve`` on loopback
and drives it with a bounded, closed-loop load generator: C client threads, each with one
keep-alive connection, send R single-query GET searches in all; reports requests/s, p50 and p99
per concurrency level. The load generator runs on the same machine and takes CPU from the
server: the figures are a floor for what a separate client would see.

    python -m benchmarks.serve_bench --vectors cached   # 100k real vectors from the benchmark cache
    python benchmarks/serve_bench.py                    # 100k documents, encoded by the model
    python benchmarks/serve_bench.py --vectors random   # 100k documents, built in seconds

``cached`` takes the real embeddings that ``python -m benchmarks`` caches (encoding what is
missing once), so the index is the one ``auto`` builds for real text at that size (HNSW past
20,000 documents), built in a minute; ``random`` vectors suit only ``--index-type flat``
(ANN tuning on random vectors says nothing).
    python benchmarks/serve_bench.py --docs 5000 --requests 300 --concurrency 1 4   # a quick run
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

# As `simsearch serve` does, so the in-process figure is measured under the same conditions.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "data" / "en_sentences_nltk_ccby" / "sentences.tsv"


def sentences(corpus: Path) -> list[str]:
    with corpus.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        return list(dict.fromkeys(row[3] for row in rows if len(row) == 4 and len(row[3]) > 20))


class RandomVectors:
    """The default model's identity with random unit vectors for the documents.

    Serving cost does not depend on what the document vectors are (a flat index scans them all,
    whatever their values), and queries are still encoded by the real model when served; this
    only skips encoding 100k documents, which takes an hour on two busy CPU cores.
    """

    def __init__(self) -> None:
        import numpy as np

        from simsearch.encode.torch_encoder import Encoder

        model = Encoder()
        self.model_id, self.model_path, self.pooling = model.model_id, model.model_path, model.pooling
        self.dim, self.max_length, self.precision = model.dim, model.max_length, model.precision
        self._rng = np.random.default_rng(0)

    def encode_counting(self, texts, **kwargs):
        import numpy as np

        vectors = self._rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), 0

    def encode(self, texts, **kwargs):
        return self.encode_counting(texts, **kwargs)[0]


def ensure_index(home: Path, name: str, texts: list[str], vectors: str) -> None:
    from simsearch.errors import SimsearchError
    from simsearch.index import Index

    try:
        if len(Index.open(name, index_dir=home)) == len(texts):
            print(f"reusing {home / name} ({len(texts)} documents)")
            return
    except SimsearchError:
        pass
    print(f"building {home / name}: {len(texts)} documents (once; reused by later runs)...", flush=True)
    encoder = RandomVectors() if vectors == "random" else None
    stats = Index.build(texts, name, encoder, index_dir=home, force=True).last_build
    assert stats is not None  # set by every build
    print(f"built in {stats.seconds:.0f} s ({stats.per_second:.0f} documents/s)")


def cached_index(home: Path, name: str, docs: int) -> tuple[list[str], list[str]]:
    """An index of the first ``docs`` cached real vectors; queries are 500 sentences after them."""
    sys.path.insert(0, str(HERE.parent))
    from benchmarks import corpus, prebuilt

    texts, vectors = corpus.vectors(docs)
    index = prebuilt.build(name, home, texts, vectors)
    print(
        f"built {home / name}: {len(index)} documents, {index.manifest['index_type']} "
        f"({index.manifest['ann'].get('search_params') or 'exact'})",
        flush=True,
    )
    return texts, corpus.shuffled()[docs : docs + 500]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def in_process(home: Path, name: str, queries: list[str], k: int) -> dict[str, float]:
    from simsearch.index import Index

    index = Index.open(name, index_dir=home)
    for query in queries[:10]:
        index.search(query, k)  # load the model, warm the caches
    times = []
    for query in queries:
        started = time.perf_counter()
        index.search(query, k)
        times.append(time.perf_counter() - started)
    return {"requests": len(times), **percentiles(times)}


def start_server(home: Path, name: str, log: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    command = [sys.executable, "-m", "simsearch", "serve", name, "--index-dir", str(home), "--port", "0"]
    sink = log.open("wb")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if (found := re.search(r"at http://(127\.0\.0\.1):(\d+)/", text)) and "startup complete" in text:
            return process, found.group(1), int(found.group(2))
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{text}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def load(
    host: str, port: int, name: str, queries: list[str], k: int, clients: int, total: int
) -> dict[str, float]:
    """``clients`` threads share ``total`` requests; each waits for its answer before the next."""
    paths = [f"/indexes/{name}/search?" + urllib.parse.urlencode({"query": q, "k": k}) for q in queries]
    times: list[float] = []
    errors: list[str] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                number = next(counter, None)
            if number is None:
                break
            started = time.perf_counter()
            connection.request("GET", paths[number % len(paths)])
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                times.append(elapsed)
                if response.status != 200:
                    errors.append(body[:200].decode(errors="replace"))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return {
        "clients": clients,
        "requests": total,
        "requests_per_s": round(total / wall, 1),
        **percentiles(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the index [100000]")
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level [2000]")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 4, 16], help="client threads [1 4 16]"
    )
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--vectors",
        choices=("cached", "model", "random"),
        default="model",
        help="document vectors: encoded by the model, or random unit rows (fast build; "
        "same search cost) [model]",
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--index-dir", type=Path, default=HERE / "results" / "serve-indexes")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve_bench.json")
    args = parser.parse_args()

    texts = sentences(args.corpus)
    if len(texts) < args.docs + 500:
        raise SystemExit(f"{args.corpus} has {len(texts)} usable sentences; need {args.docs} + 500 queries")
    documents, queries = texts[: args.docs], texts[-500:]  # queries are sentences not in the index
    name = f"sentences-{args.docs}-{args.vectors}"
    if args.vectors == "cached":
        documents, queries = cached_index(args.index_dir, name, args.docs)
    else:
        ensure_index(args.index_dir, name, documents, args.vectors)

    report = {
        "docs": args.docs,
        "vectors": args.vectors,
        "k": args.k,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "python": sys.version.split()[0],
    }
    manifest = json.loads((args.index_dir / name / "manifest.json").read_text(encoding="utf-8"))
    report["index"] = {"type": manifest.get("index_type"), "ann": manifest.get("ann")}
    report["in_process"] = in_process(args.index_dir, name, queries, args.k)
    print(f"load average {report['load_average'][0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"in-process Index.search: p50 {report['in_process']['p50_ms']} ms, p99 {report['in_process']['p99_ms']} ms"
    )
    process, host, port = start_server(args.index_dir, name, args.out.with_suffix(".log"))
    try:
        load(host, port, name, queries, args.k, 1, 20)  # warm-up
        report["http"] = []
        for clients in args.concurrency:
            row = load(host, port, name, queries, args.k, clients, args.requests)
            report["http"].append(row)
            print(
                f"HTTP, {clients:>2} clients: {row['requests_per_s']:>7} requests/s, p50 {row['p50_ms']} ms, "
                f"p99 {row['p99_ms']} ms",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait(30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
