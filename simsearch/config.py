"""Process settings in one place: the ``SIMSEARCH_*`` environment variables and the few
process-wide knobs simsearch turns (and when it turns them).

Every variable is read when it is needed (not at import), so a test or a long-lived process may
change it between calls. :data:`SETTINGS` is the documented list; ``docs/library.md`` shows it
as a table (``python -m simsearch.cli.docgen`` keeps that table current).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One documented environment variable or process-wide setting."""

    name: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SIMSEARCH_INDEX_DIR",
        "./indexes",
        "Where indexes live (the CLI's `--index-dir` and `index_dir=` take precedence).",
    ),
    Setting(
        "SIMSEARCH_LOCK_TIMEOUT", "60", "Seconds a writer waits for another writer's lock before giving up."
    ),
    Setting(
        "SIMSEARCH_QUERY_BACKEND",
        "auto",
        "`torch` turns the ONNX Runtime paths off: queries, and fp32 builds (benchmarks, debugging).",
    ),
    Setting(
        "SIMSEARCH_CACHE",
        "$XDG_CACHE_HOME/simsearch, else ~/.cache/simsearch",
        "Cache directory; ONNX exports of models go under `onnx/` in it.",
    ),
    Setting(
        "SIMSEARCH_ONNX_EXPORT",
        "1",
        "`0` never writes ONNX exports (queries then use torch unless an export exists). "
        "Otherwise an export is written by `Index.build` and by the first search of an index "
        "whose export is missing; opening an index or loading its encoder writes nothing.",
    ),
    Setting(
        "SIMSEARCH_COMPILE",
        "auto",
        "bf16 builds on the CPU through `torch.compile` (frozen, prepacked weights and fused "
        "non-GEMM work: 1.1-1.2x the eager rate; compiling takes ~21 s once per process): "
        "`auto` switches after 100,000 texts in large calls per torch thread (200,000 on two), "
        "`1` on the first large call, `0` never.",
    ),
    Setting(
        "OMP_WAIT_POLICY",
        "`PASSIVE` (set by the CLI and the server unless already set)",
        "Idle OpenMP workers (torch's, FAISS's) sleep instead of spinning: spinning ones starve "
        "the threads doing the work on a machine with few cores (measured in "
        "`python -m benchmarks.threads`, see benchmarks/README.md).",
    ),
    Setting(
        "OPENBLAS_NUM_THREADS",
        "`1` (set by the CLI and the server unless already set)",
        "numpy's (and FAISS's) OpenBLAS on one thread: a query's exact scan is one matrix-vector "
        "product, bound by memory, and its threads only compete with the other shards' and "
        "requests' (measured in `python -m benchmarks.fanout`: the plain query 1.5-2.2x faster "
        "under load, a 4-shard fan-out from 3.2x to ~1.1x plain at 100k; builds encode with torch's "
        "own threads, unchanged).",
    ),
    Setting(
        "SIMSEARCH_THREAD_DEFAULTS",
        "1",
        "`0`: the CLI leaves the thread variables above as the environment has them "
        "(benchmarks). Library users set them before importing torch or FAISS, or call "
        "`simsearch.config.thread_defaults()` first.",
    ),
    Setting(
        "FAISS threads",
        "unchanged",
        "A search sets FAISS's OpenMP thread count for its own duration (one thread for a "
        "few queries, all for batches) and restores the caller's value afterwards.",
    ),
    Setting(
        "garbage collector",
        "objects frozen once an encoder is set up (the CLI, Ray's encoder actors)",
        "Around the first large call of each of an encoder's forward paths (its ONNX Runtime "
        "session, its compiled model), the objects alive then are moved out of the cyclic "
        "collector's full passes (`gc.freeze`), which otherwise walk all of them every few "
        "thousand texts (0.1-0.5 s a pass; a 30,000-sentence build spends half as long in them: "
        "benchmarks/README.md, session 14). "
        "Library users opt in with `simsearch.config.freeze_heap_when_ready()`.",
    ),
    Setting(
        "csv field size limit",
        "2**31 - 1",
        "Raised when `simsearch.readers` is imported: a long CSV cell is a document.",
    ),
    Setting(
        "transformers logging",
        "errors only",
        "Set when a model is loaded: no progress bars or warnings from transformers.",
    ),
)

_TRUE = {"1", "true", "yes", "on"}
DEFAULT_INDEX_DIR = "indexes"
DEFAULT_LOCK_TIMEOUT = 60.0


def index_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$SIMSEARCH_INDEX_DIR``, else ``./indexes``."""
    return Path(explicit or os.environ.get("SIMSEARCH_INDEX_DIR") or DEFAULT_INDEX_DIR)


def lock_timeout() -> float:
    """``$SIMSEARCH_LOCK_TIMEOUT`` in seconds: a number >= 0 (``inf`` waits for ever)."""
    text = os.environ.get("SIMSEARCH_LOCK_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        from simsearch.errors import SimsearchError

        raise SimsearchError(
            f"SIMSEARCH_LOCK_TIMEOUT={text!r} is not a number of seconds >= 0; "
            f"set it to e.g. 60 or unset it (default {DEFAULT_LOCK_TIMEOUT:g})"
        )
    return value


def query_backend() -> str:
    """``auto`` (ONNX when exported) or ``torch``."""
    return os.environ.get("SIMSEARCH_QUERY_BACKEND", "auto")


def encoder_compile() -> str:
    """``SIMSEARCH_COMPILE``: ``1``, ``0`` or ``auto`` (anything else reads as ``auto``)."""
    value = os.environ.get("SIMSEARCH_COMPILE", "auto").strip().lower()
    if value in _TRUE:
        return "1"
    return "0" if value in {"0", "false", "no", "off"} else "auto"


def cache_home() -> Path:
    """``$SIMSEARCH_CACHE``, else ``$XDG_CACHE_HOME/simsearch``, else ``~/.cache/simsearch``."""
    explicit = os.environ.get("SIMSEARCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simsearch"


def onnx_export() -> bool:
    """Whether simsearch may write ONNX exports into :func:`cache_home`."""
    return os.environ.get("SIMSEARCH_ONNX_EXPORT", "1").strip().lower() in _TRUE


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


def allow_long_csv_fields() -> None:
    """Process-wide: a 10 MB CSV cell is a document, not an attack."""
    csv.field_size_limit(2**31 - 1)


def quiet_transformers() -> None:
    """Process-wide: transformers prints errors only, and no progress bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


#: The thread settings that won in ``python -m benchmarks.threads`` (benchmarks/README.md),
#: applied by every CLI command and by the server: the one place simsearch turns them.
THREAD_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}


def thread_defaults() -> None:
    """Process-wide: :data:`THREAD_DEFAULTS` for variables the user has not set, unless
    ``SIMSEARCH_THREAD_DEFAULTS=0``. Must run before torch or FAISS load to take effect."""
    if os.environ.get("SIMSEARCH_THREAD_DEFAULTS", "1").strip().lower() not in _TRUE:
        return
    for name, value in THREAD_DEFAULTS.items():
        os.environ.setdefault(name, value)


_freeze_heap = False


def freeze_heap_when_ready() -> None:
    """Process-wide, for processes simsearch runs (the CLI, Ray's encoder actors, benchmarks):
    from now on :func:`heap_ready` freezes the heap.

    A full collection of Python's cyclic garbage collector walks every tracked object, ~400,000
    once torch, transformers and a model are loaded (~700,000 with a compiled model): 0.1-0.5 s
    a pass, and a build's allocations set one off every few thousand texts. Objects frozen with
    :func:`gc.freeze` are skipped by those passes; they are still freed when their last reference
    goes (only a reference cycle among them would stay in memory), so this suits what lives as
    long as the process, and is not done to a library user's process unasked.
    """
    global _freeze_heap
    _freeze_heap = True


def heap_ready() -> None:
    """An encoder has set up what it keeps (its first large call, a newly compiled forward):
    freeze the objects alive now if :func:`freeze_heap_when_ready` was called, else nothing."""
    if _freeze_heap:
        import gc

        gc.freeze()


def passive_openmp() -> None:
    """For servers: OpenMP workers sleep when idle (unless the user chose otherwise), whatever
    ``SIMSEARCH_THREAD_DEFAULTS`` says: torch and FAISS teams on different threads otherwise
    spin against each other (a 20 ms search took 1.5 s on 2 cores).

    Must run before torch or FAISS load to take effect.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
