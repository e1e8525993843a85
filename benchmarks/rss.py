"""Peak memory (RSS) of a real ``simsearch build`` as the corpus grows."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .stats import table

_PROBE = """
import resource, sys
from simsearch.cli.main import run as main
sys.argv = ["simsearch", "build", sys.argv[1], "--name", "rss", "--index-dir", sys.argv[2], "--force",
            "--index-type", sys.argv[3]]
try:
    main()
except SystemExit as exit:
    if exit.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run(texts: list[str], sizes: list[int], log=print) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            source = Path(tmp) / f"docs-{n}.txt"
            source.write_text("\n".join(t.replace("\n", " ") for t in texts[:n]) + "\n", encoding="utf-8")
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _PROBE, str(source), str(Path(tmp) / "idx"), "flat"],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds = time.perf_counter() - started
            peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
            vectors_mb = n * 384 * 4 / 2**20
            rows.append([f"{n:,}", f"{peak_mb:.0f}", f"{vectors_mb:.1f}", f"{seconds:.0f}"])
            log(f"rss: {n} done")
    return [
        "`simsearch build` of the first N shuffled sentences (exact index), fresh process, "
        "peak resident memory from getrusage. Documents are encoded and stored in chunks of "
        "2,048, and the FAISS index is filled from SQLite in chunks, so the peak is the model "
        "and runtime plus the vectors the index holds.",
        "",
    ] + table(["documents", "peak RSS MB", "of which float32 vectors MB", "wall s"], rows)
