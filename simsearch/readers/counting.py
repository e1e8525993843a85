"""How many documents sources will give, when that is cheap to know: the total of a progress bar.

One quick pass over each file's bytes (no decoding, no JSON parsing): non-blank lines of text
and JSON-lines files, rows of CSV/TSV, the row count Parquet keeps in its footer, ``.txt``/``.md``
files of a directory. Anything else (standard input, a pipe, ``--split`` other than ``lines`` of
a text file) is unknown: ``None``, and the bar counts without a total, as before.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from simsearch.readers.records import FORMAT_OF_SUFFIX, ReadOptions


def count_documents(sources: Sequence[str | Path], options: ReadOptions = ReadOptions()) -> int | None:
    """The number of documents ``sources`` hold (an estimate: records with empty texts are
    counted), or None when it cannot be known without reading them as the build will."""
    total = 0
    for source in sources:
        try:
            found = _count(str(source), options)
        except (OSError, ValueError, csv.Error):
            return None  # the read itself will report what is wrong
        if found is None:
            return None
        total += found
    return total


def _count(source: str, options: ReadOptions) -> int | None:
    if source == "-":
        return None
    path = Path(source)
    if path.is_dir():
        if options.split != "none":
            return None
        return sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".md"))
    if not path.is_file():
        return None
    kind = options.format if options.format != "auto" else FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if options.split != "none" and not (options.split == "lines" and kind == "txt"):
        return None
    if kind in ("txt", "jsonl"):
        with path.open("rb") as stream:
            return sum(1 for line in stream if line.strip())
    if kind in ("csv", "tsv"):
        with path.open("rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
            rows = sum(1 for row in csv.reader(text, delimiter="," if kind == "csv" else "\t") if any(row))
        return max(rows - 1, 0)  # the header
    if kind == "parquet":
        try:
            import pyarrow.parquet as pq
        except ModuleNotFoundError:
            return None
        return int(pq.ParquetFile(str(path)).metadata.num_rows)
    return None
