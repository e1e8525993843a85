"""Runs one write on an index so that tests/store/test_crash.py can SIGKILL it at a random moment.

    python tests/store/crash_driver.py OP PATH N     (OP: build | rebuild | rebuild-fail | add |
                                                      delete | compact | churn TAG)

Prints ``ready`` once the imports are done, then writes, then prints ``done``. The suite's fake encoder
(tests/fakes.py) stands in for the model: what is under test is the store, and the driver must start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: make `tests` importable

from simsearch.index import Index  # noqa: E402
from simsearch.readers import Document  # noqa: E402
from tests.fakes import FakeEncoder  # noqa: E402


class FailingEncoder(FakeEncoder):
    """Encodes the first chunk, then fails: a force build that dies of bad input half-way."""

    calls = 0

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        FailingEncoder.calls += 1
        if FailingEncoder.calls > 1:
            raise SystemExit("the input went bad half-way")
        return super().encode_counting(texts)


def corpus(n: int, version: int) -> list[Document]:
    return [
        Document(
            f"d{i}", f"version {version} of document {i} " + "filler text " * (i % 7), {"i": i, "v": version}
        )
        for i in range(n)
    ]


def main() -> None:
    op, path, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    encoder = FakeEncoder()
    if op.startswith(("build", "rebuild")):
        print("ready", flush=True)
        if op == "rebuild-fail":
            Index.build(corpus(n, 1), path, FailingEncoder(), force=True)
        else:
            Index.build(corpus(n, 1 if op == "rebuild" else 0), path, encoder, force=op == "rebuild")
        print("done", flush=True)
        return
    index = Index.open(path, encoder=encoder)
    print("ready", flush=True)
    if op == "add":  # half the texts change, as many new documents arrive
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
