"""Each vector stored once: bytes on disk and the cost of opening an index, both layouts.

``python -m benchmarks.open_cost --docs 100000 [--index-type flat] [--rounds 5]``

Builds one index of ``--docs`` synthetic unit vectors (384-d, the default model's width, texts
``"document i ..."``) through the normal build (format 2: the FAISS file leaves its vectors to
SQLite), copies it and rewrites the copy's generation self-contained (format 1, the layout
before: the FAISS file holds a second float32 copy), then times ``Store.open`` (FAISS file read,
plus the vectors put back from SQLite in format 2) and the first exact query after it, the two
layouts alternating, ``--rounds`` times each. The page cache is warm (the files were just
written): this is what a starting process pays, not a cold disk.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path

import faiss
import numpy as np

from simsearch.store.files import file_sha256
from simsearch.store.generation import Store

from . import prebuilt
from .stats import machine_lines


def self_contained(path: Path, target: Path) -> None:
    """A copy of ``path`` whose generation is in the layout before format 2."""
    shutil.copytree(path, target)
    with closing(Store.open(target)) as store:
        manifest = store.manifest.to_dict()
        file = target / manifest["files"]["faiss"]["name"]
        faiss.write_index(store.faiss.index, str(file))
    manifest.pop("faiss_vectors", None)
    manifest["format_version"] = 1
    manifest["files"]["faiss"].update(size=file.stat().st_size, sha256=file_sha256(file))
    (target / "manifest.json").write_text(json.dumps(manifest))


def _sizes(path: Path) -> dict[str, int]:
    manifest = json.loads((path / "manifest.json").read_text())
    return {role: int(entry["size"]) for role, entry in manifest["files"].items()}


def _open_and_query(path: Path, query: np.ndarray) -> tuple[float, float]:
    start = time.perf_counter()
    store = Store.open(path)
    opened = time.perf_counter()
    store.faiss.search(query, 10)
    done = time.perf_counter()
    store.close()
    return (opened - start) * 1e3, (done - opened) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.open_cost", description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--index-type", default="flat")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.docs, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"document {i} about topic {i % 97} and its neighbour {i % 13}" for i in range(args.docs)]
    query = vectors[:1].copy()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        start = time.perf_counter()
        prebuilt.build("new", home, texts, vectors, index_type=args.index_type).close()
        built = time.perf_counter() - start
        self_contained(home / "new", home / "old")
        times: dict[str, list[tuple[float, float]]] = {"new": [], "old": []}
        for _ in range(args.rounds):
            for name in ("old", "new"):
                times[name].append(_open_and_query(home / name, query))
        print("\n".join(machine_lines()))
        print(f"{args.docs} docs, {args.index_type}, build {built:.1f} s (format 2)")
        for name, label in (("old", "format 1 (vectors in FAISS too)"), ("new", "format 2 (vectors once)")):
            sizes = _sizes(home / name)
            opens = statistics.median(t for t, _ in times[name])
            first = statistics.median(q for _, q in times[name])
            print(
                f"{label}: sqlite {sizes['sqlite'] / args.docs:,.0f} B/doc, faiss "
                f"{sizes['faiss'] / args.docs:,.0f} B/doc; open {opens:.0f} ms, first query {first:.1f} ms "
                f"(medians of {args.rounds})"
            )


if __name__ == "__main__":
    main()
