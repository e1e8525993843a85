"""Runs one write on an index so that tests/store/test_crash.py can SIGKILL it at a random moment.

    python tests/store/crash_driver.py OP PATH N     (OP: build | rebuild | add | delete | compact | churn)

Prints ``ready`` once the imports are done, then writes, then prints ``done``. A deterministic hashing encoder stands
in for the model: what is under test is the store, and the driver must start fast.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from simsearch.index import Index
from simsearch.readers import Document


class HashEncoder:
    model_id, model_path, pooling, max_length, dim = "test/hash", Path("/nonexistent"), "mean", 64, 32

    def encode(self, texts, **kwargs):
        return self.encode_counting(texts, **kwargs)[0]

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            row = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(row / np.linalg.norm(row))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim), 0


def corpus(n: int, version: int) -> list[Document]:
    return [Document(f"d{i}", f"version {version} of document {i} " + "filler text " * (i % 7),
                     {"i": i, "v": version}) for i in range(n)]


def main() -> None:
    op, path, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    encoder = HashEncoder()
    index = None if op in ("build", "rebuild") else Index.open(path, encoder=encoder)
    print("ready", flush=True)
    if op in ("build", "rebuild"):
        Index.build(corpus(n, 1 if op == "rebuild" else 0), path, encoder, force=op == "rebuild")
    elif op == "add":  # half the texts change, as many new documents arrive
        changed = [d for d in corpus(n, 2) if int(d.id[1:]) % 2 == 0]
        fresh = [Document(f"new{i}", f"a new document {i}", {}) for i in range(n // 2)]
        index.add(changed + corpus(n, 0)[1::2] + fresh)
    elif op == "delete":
        index.delete([f"d{i}" for i in range(0, n, 3)] + ["no-such-id"])
    elif op == "compact":
        index.compact()
    elif op == "churn":  # N small adds in a row, tagged so two concurrent writers can be told apart
        tag = sys.argv[4]
        for j in range(n):
            index.add([Document(f"{tag}-{j}", f"{tag} document number {j}", {})])
    else:
        raise SystemExit(f"unknown op {op}")
    print("done", flush=True)


if __name__ == "__main__":
    main()
