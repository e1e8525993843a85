"""``python -m benchmarks``: run the side-by-side measurements and write a markdown report.

python -m benchmarks                      # everything, defaults as in README.md, "Speed"
python -m benchmarks --sections encoders --sentences 300 --rounds 3 --encoder-threads 1,all
python -m benchmarks --sections ann1m     # ANN at 1M vectors (real + synthetic), 15-20 min
python -m benchmarks --sections peers --peer-build-docs 1000   # vs chromadb and LanceDB
python -m benchmarks --sections encoders --isa avx2   # as on an AVX2-only CPU (benchmarks/isa.py)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from . import corpus, isa
from .stats import machine_lines

SECTIONS = ("encoders", "latency", "cold", "exact", "ann", "ann1m", "breakeven", "rss", "peers", "ivfpq")
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "ann1m")  # ann1m: 15-20 min on 2 cores: on request


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)} [all but ann1m]",
    )
    parser.add_argument("--sentences", type=int, default=4000, help="encoder corpus size")
    parser.add_argument(
        "--encoder-threads",
        default="1,all",
        help="comma-separated thread counts of the encoder table ('all' = every core) [1,all]",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=100_000, help="index size for query latency")
    parser.add_argument("--queries", type=int, default=100, help="single queries per latency round")
    parser.add_argument("--ann-size", type=int, default=None, help="vectors for the ANN table [all]")
    parser.add_argument(
        "--real", type=int, default=None, help="real vectors to use (encoding what is missing) [all 131k]"
    )
    parser.add_argument("--no-encode", action="store_true", help="use only the vectors already cached")
    parser.add_argument(
        "--exact-sizes",
        default="20000,100000,131000",
        help="index sizes of the exact single-query comparison",
    )
    parser.add_argument(
        "--ann1m-size",
        type=int,
        default=1_000_000,
        help="vectors of the large ANN table (real ones + synthetic extension)",
    )
    parser.add_argument("--rss-sizes", default="1000,4000")
    parser.add_argument(
        "--ann1m-kinds", default="flat,auto,ivf", help="index types of the large ANN table (flat first)"
    )
    parser.add_argument(
        "--ann1m-ef-construction",
        type=int,
        default=None,
        help="HNSW efConstruction of the large ANN table [the library's HNSW_EF_CONSTRUCTION]",
    )
    parser.add_argument(
        "--peer-build-docs", type=int, default=1000, help="sentences each engine builds from text (peers)"
    )
    parser.add_argument("--out", type=Path, default=corpus.RESULTS / "report.md")
    parser.add_argument(
        "--isa",
        choices=isa.CHOICES,
        default="native",
        help="avx2: run with every library seeing an AVX2-only CPU (CPUID masked; benchmarks/isa.py) [native]",
    )
    args = parser.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.isa == "avx2" and os.environ.get(isa.ENV) != "avx2":
        isa.restart_as_avx2(sys.argv[1:])  # does not return
    isa.check()

    def log(message: str, **_: object) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    started = time.time()
    out = (
        [
            f"# simsearch benchmarks ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
            "",
            "Command: `python -m benchmarks " + " ".join(sys.argv[1:]) + "`",
            "",
        ]
        + machine_lines()
        + [line for line in [isa.machine_line()] if line]
        + [""]
    )
    if "encoders" in sections:
        from . import encoders

        for threads in _thread_counts(args.encoder_threads, parser):
            out += (
                [f"## Encoder throughput, {threads} thread(s)", ""]
                + encoders.run(corpus.sample(args.sentences), args.rounds, log, threads=threads)
                + [""]
            )
    needs_vectors = {"latency", "cold", "exact", "ann", "ann1m", "breakeven", "peers", "ivfpq"} & set(
        sections
    )
    if needs_vectors:
        texts, vectors = corpus.vectors(args.real, encode=not args.no_encode, log=log)
        log(f"{len(texts)} real vectors available")
        if not texts:
            raise SystemExit(
                "no cached vectors in benchmarks/results/ yet: run once without "
                "--no-encode (it encodes the 131k corpus and caches it)"
            )
    if {"latency", "cold"} & set(sections):
        out += _query_sections(args, sections, texts, vectors, log)
    if "exact" in sections:
        from . import exact

        sizes = [int(s) for s in args.exact_sizes.split(",") if s]
        out += (
            ["## Exact single queries: simsearch vs numpy vs FAISS", ""]
            + exact.run(vectors, sizes, args.rounds, log=log)
            + [""]
        )
    if "ann1m" in sections:
        from . import ann_large

        out += (
            [f"## ANN at {args.ann1m_size:,} vectors", ""]
            + ann_large.run(
                vectors,
                args.ann1m_size,
                log=log,
                kinds=tuple(args.ann1m_kinds.split(",")),
                ef_construction=args.ann1m_ef_construction,
            )
            + [""]
        )
    if "ann" in sections:
        from . import ann_table, prebuilt

        _, data = prebuilt.extend(texts, vectors, args.ann_size or len(texts))
        out += (
            ["## ANN: recall, speed and memory per index type", ""]
            + ann_table.run(data, min(len(texts), len(data)), log=log)
            + [""]
        )
    if "breakeven" in sections:
        from . import ann_table

        sizes = [2_000, 5_000, 10_000, 20_000, 50_000, 100_000]
        out += ["## Exact vs ANN break-even", ""] + ann_table.break_even(vectors, sizes, log=log) + [""]
    if "ivfpq" in sections:
        from . import ivfpq

        out += ["## ivfpq with a refine stage (quality, no timings)", ""] + ivfpq.run(vectors, log=log) + [""]
    if "peers" in sections:
        from . import peers, prebuilt

        doc_texts, doc_vectors = prebuilt.extend(texts, vectors, args.docs)
        out += (
            ["## simsearch vs chromadb vs LanceDB", ""]
            + peers.run(
                corpus.shuffled()[: args.peer_build_docs],
                doc_texts,
                doc_vectors,
                min(len(texts), args.docs),
                corpus.sample(args.queries, seed=5),
                args.rounds,
                log,
            )
            + [""]
        )
    if "rss" in sections:
        from . import rss

        sizes = [int(s) for s in args.rss_sizes.split(",") if s]
        out += ["## Peak memory of a build", ""] + rss.run(corpus.shuffled(), sizes, log) + [""]
    load = os.getloadavg()
    out += [
        f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        f"total {time.time() - started:.0f} s.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out), encoding="utf-8")
    log(f"report written to {args.out}")


def _thread_counts(text: str, parser: argparse.ArgumentParser) -> list[int]:
    counts = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item == "all":
            counts.append(os.cpu_count() or 1)
        elif item.isdigit() and int(item) > 0:
            counts.append(int(item))
        else:
            parser.error(f"--encoder-threads: {item!r} is neither a positive number nor 'all'")
    return counts


def _query_sections(args, sections, texts, vectors, log) -> list[str]:
    from simsearch.encode import onnx_export
    from simsearch.encode.torch_encoder import Encoder

    from . import prebuilt, queries

    onnx_export.prepare(Encoder())  # the export a real build would have made
    home = Path(tempfile.mkdtemp(prefix="simsearch-bench-"))
    doc_texts, doc_vectors = prebuilt.extend(texts, vectors, args.docs)
    log(f"building a {len(doc_texts)}-document index ({len(texts)} real vectors)")
    prebuilt.build("bench", home, doc_texts, doc_vectors)
    asked = corpus.sample(args.queries, seed=5)
    out = []
    if "latency" in sections:
        out += (
            ["## Query latency", ""]
            + queries.warm_latency(home, "bench", asked, doc_vectors, args.rounds, log)
            + [""]
        )
    if "cold" in sections:
        out += ["## Cold CLI", ""] + queries.cold_cli(home, "bench", asked[0], args.rounds, log) + [""]
    return out


if __name__ == "__main__":
    main()
