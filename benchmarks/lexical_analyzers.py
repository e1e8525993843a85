"""Lexical part build time by analyzer: KorQuAD's 961 paragraphs and the 131k English sentences.

    python -m benchmarks.lexical_analyzers [--analyzers standard,korean] [--repeat 3]

Times ``lexical.rebuild`` (analyse every stored text, FTS5 insert, optimize) on an in-memory
SQLite ``documents`` table, the lexical part of a build, for each analyzer; the Korean
analyzer's one-off model load (once per process) is timed apart, before the runs. The texts are
what a build stores: KorQuAD ``title + " " + context`` (as ``simsearch eval korquad`` builds
them), the English corpus' sentences (``benchmarks.corpus.sentences``). Run with the code of
another checkout on ``PYTHONPATH`` (``--analyzers standard``) for a before/after.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from pathlib import Path

from benchmarks.corpus import sentences
from simsearch.store import lexical

KORQUAD = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "korquad_v1_dev"
    / "KorQuAD_v1.0_dev.json"
)


def korquad_texts() -> list[str]:
    from simsearch.eval.datasets import doc_text
    from simsearch.eval.retrieval_views import load_korquad

    return [doc_text(doc) for doc in load_korquad(KORQUAD).corpus.values()]


def rebuild_seconds(texts: list[str], analyzer: object) -> float:
    scratch = sqlite3.connect(":memory:")
    scratch.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, text TEXT)")
    scratch.executemany("INSERT INTO documents VALUES (?, ?)", enumerate(texts, 1))
    started = time.perf_counter()
    lexical.rebuild(scratch, analyzer)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    scratch.close()
    return seconds


def make(name: str) -> object:
    from simsearch.store.lexical.analyzer import Analyzer

    if name == "standard":
        return Analyzer()
    from simsearch.store.lexical import morphemes

    started = time.perf_counter()
    morphemes.content_morphemes("한국어")  # loads Kiwi once for the process
    print(
        f"kiwipiepy {morphemes.version()}: model load {time.perf_counter() - started:.2f} s (once per process)"
    )
    return Analyzer(morphemes="kiwi")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--analyzers", default="standard,korean")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpora = {"KorQuAD 961 paragraphs": korquad_texts(), "English 131k sentences": sentences()}
    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()}")
    for name in args.analyzers.split(","):
        analyzer = make(name)
        for corpus, texts in corpora.items():
            runs = [rebuild_seconds(texts, analyzer) for _ in range(args.repeat)]
            print(
                f"{name:9s} {corpus} ({len(texts)} texts, {sum(map(len, texts)):,} chars): "
                f"best {min(runs):.2f} s, runs {', '.join(f'{r:.2f}' for r in runs)}"
            )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
