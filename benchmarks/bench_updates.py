"""How long does one small update (add or delete) take, and where does the time go?

Compares the two ways a writer can produce the new FAISS file: incremental (read the previous
FAISS file and check its sha256, remove_ids, add_with_ids) vs rebuilding it from every vector
stored in SQLite. "Whole update" is copy + SQL + FAISS + write + fsync + checksums + manifest.
Random unit vectors stand in for the model (encoding time is not what is measured here).

    python benchmarks/bench_updates.py --docs 100000 --dim 384 --changes 100
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from simsearch.store.index_types import builder, rebuild_builder
from simsearch.store.write.writer import StoreWriter
from simsearch.store.faiss_file import apply_changes, to_blob
from simsearch.store.write.derive import previous_faiss


def build(path: Path, docs: int, dim: int, rng: np.random.Generator) -> None:
    with StoreWriter(path) as writer:
        assert writer.db is not None
        for start in range(0, docs, 10000):
            n = min(10000, docs - start)
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            writer.db.executemany(
                "INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, ?, '{}', '', ?)",
                [
                    (f"d{start + i}", f"text of document {start + i} " * 8, to_blob(v))
                    for i, v in enumerate(vectors)
                ],
            )
        writer.commit({"dim": dim, "model": "random", "pooling": "none"}, builder("flat"))


def update(
    path: Path, changes: int, dim: int, rng: np.random.Generator, rebuild: bool
) -> tuple[float, float]:
    """One add of ``changes`` new documents plus a delete of as many; (total s, FAISS step s)."""
    started = time.perf_counter()
    with StoreWriter(path, update=True, rebuild=rebuild) as writer:
        assert writer.db is not None and writer.previous is not None
        rows = writer.db.execute(
            "SELECT rowid FROM documents ORDER BY random() LIMIT ?", (changes,)
        ).fetchall()
        gone = [r[0] for r in rows]
        writer.db.executemany("DELETE FROM documents WHERE rowid = ?", [(r,) for r in gone])
        writer.changed.update(gone)
        vectors = rng.standard_normal((changes, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for v in vectors:
            cur = writer.db.execute(
                "INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, 'new', '{}', '', ?)",
                (f"n{rng.integers(1 << 62)}", to_blob(v)),
            )
            assert cur.lastrowid is not None
            writer.changed.add(cur.lastrowid)
        writer.db.commit()
        faiss_started = time.perf_counter()
        if rebuild:
            builder("flat")(writer.db, dim)
        else:
            old = previous_faiss(path, writer.previous)  # (format 2: its vectors put back from SQLite)
            assert old is not None  # its checksum matched
            apply_changes(old, writer.db, sorted(writer.changed), dim)
        faiss_seconds = time.perf_counter() - faiss_started
        writer.commit(dict(writer.previous), rebuild_builder(writer.previous))  # does the step again
    return time.perf_counter() - started, faiss_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench"
        started = time.perf_counter()
        build(path, args.docs, args.dim, rng)
        print(f"build of {args.docs} x {args.dim}: {time.perf_counter() - started:.2f} s")
        for rebuild in (False, True):
            runs = [update(path, args.changes, args.dim, rng, rebuild) for _ in range(args.repeat)]
            total = statistics.median(r[0] - r[1] for r in runs)  # commit repeats the FAISS step
            step = statistics.median(r[1] for r in runs)
            label = "rebuild    " if rebuild else "incremental"
            print(
                f"{label}: FAISS step {step:.3f} s, whole update {total:.3f} s "
                f"(+{args.changes} -{args.changes} docs, median of {args.repeat})"
            )


if __name__ == "__main__":
    main()
