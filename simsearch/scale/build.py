"""``simsearch build --ray``: read and encode on a Ray cluster, write the index here.

Sources are split into read tasks (one per file; a large file into several parts: row ranges
of a Parquet file, every m-th document of other formats), read by Ray Data, and encoded by ``map_batches`` over a fixed pool of
encoder actors (each loads the model once). Encoded batches stream back to this process, which
routes them to the shard writers by id hash (:mod:`simsearch.store.write.bulk`, the same code as a
local build) and commits once: a failure anywhere leaves the previous index (or none).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from simsearch.errors import InputError, SimsearchError
from simsearch.readers import Document, ReadOptions, read_documents
from simsearch.scale.cluster import connected, first_line, unwrap

if TYPE_CHECKING:
    from simsearch.store.write.bulk import Sink

PART_BYTES = 16 << 20  # a file larger than this is read by several tasks
# What an encoder actor gets per call: one block of the read output, cut at about this size
# (~1,100 sentences of the benchmark corpus). The encoder sorts a call's rows by length and runs
# them in batches of ``batch_size`` (1,000 or 2,048 rows sorted together encode at the same
# rate). Each call costs ~0.5 s more inside Ray Data (measured on 2 cores): at 20,000 sentences
# 256 KB blocks gave 0.90x the local build, 128 KB blocks 0.81x (docs/scale.md); much larger
# ones leave one actor working alone at the end.
BLOCK_BYTES = 256 << 10


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray build runs."""

    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclass(frozen=True)
class EncoderSpec:
    """What each encoder actor loads (the same arguments as :class:`~simsearch.encode.torch_encoder.Encoder`)."""

    model: str | None
    pooling: str = "auto"
    max_length: int | None = None
    batch_size: int = 32
    device: str = "cpu"
    precision: str = "fp32"

    def check(self) -> None:
        """The model's directory, config and tokenizer, checked here (not its weights): a model
        that fails in the actors makes Ray print pages of retries around the one-line error."""
        from simsearch.encode.models import check_loadable, resolve_model

        check_loadable(resolve_model(self.model))

    def load(self) -> Any:
        from simsearch.encode.torch_encoder import Encoder

        return Encoder(
            self.model,
            self.pooling,
            max_length=self.max_length,
            batch_size=self.batch_size,
            device=self.device,
            precision=self.precision,
        )


class EncodeActor:
    """One encoder actor of the pool: loads the model once, encodes batches of rows.

    torch runs exactly ``threads`` threads, the CPUs the actor reserved: more would fight the
    other actors of the node for its cores. Ray already sets ``OMP_NUM_THREADS`` from a whole
    reservation (measured: torch runs 1 thread in a 1-CPU actor, Ray 2.60); set here as well so a
    fractional or GPU reservation, or a node whose environment overrides it, gets the same.
    """

    def __init__(self, spec: EncoderSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoder = spec.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors, cut = self.encoder.encode_counting([str(t) for t in batch["text"]])
        truncated = np.zeros(len(vectors), dtype=np.int64)
        if len(truncated):
            truncated[0] = cut  # a batch's count rides on its first row; the writer sums them
        return {**batch, "vector": vectors, "truncated": truncated}


def read_plan(
    sources: Sequence[str], workers: int, options: ReadOptions = ReadOptions()
) -> list[dict[str, Any]]:
    """Read tasks: a file per task; a large file split into parts: row ranges of a Parquet file
    (only the overlapping row groups are read), every ``parts``-th document of other formats."""
    plan: list[dict[str, Any]] = []
    for source in sources:
        path = Path(source)
        parts = 1
        if path.is_file():
            # a part per PART_BYTES, up to 4 per worker (every part of a text file parses the
            # whole file); a read task costs a worker process, so a small file is one task (its
            # output is still cut into small blocks for the actors: BLOCK_BYTES)
            parts = max(1, min(workers * 4, -(-path.stat().st_size // PART_BYTES)))
        if parts > 1 and _is_parquet(path, options):
            import pyarrow.parquet as pq  # comes with ray[data]

            rows = pq.ParquetFile(path).metadata.num_rows
            bounds = [rows * part // parts for part in range(parts + 1)]
            plan += [
                {"source": source, "start": lo, "stop": hi} for lo, hi in zip(bounds, bounds[1:]) if hi > lo
            ]
            continue
        plan += [{"source": source, "part": part, "parts": parts} for part in range(parts)]
    return plan


def _is_parquet(path: Path, options: ReadOptions) -> bool:
    return options.format == "parquet" or (
        options.format == "auto" and path.suffix.lower() in (".parquet", ".pq")
    )


def read_part(task: dict[str, Any], options: ReadOptions) -> Iterator[dict[str, Any]]:
    """The documents of one read task, as Ray Data rows (metadata as JSON text)."""
    if "start" in task:
        from simsearch.readers.parquet import read_parquet

        docs: Iterator[Document] = read_parquet(
            task["source"], options, start=task["start"], stop=task["stop"]
        )
    else:
        docs = (
            doc
            for number, doc in enumerate(read_documents([task["source"]], options))
            if number % task["parts"] == task["part"]
        )
    for doc in docs:
        if doc.text.strip():
            yield {
                "id": doc.id,
                "text": doc.text,
                "where": doc.where,
                "metadata": json.dumps(doc.metadata, ensure_ascii=False),
            }


def ray_build(
    sources: Sequence[str],
    path: Path,
    spec: EncoderSpec,
    ray_options: RayOptions,
    *,
    read_options: ReadOptions = ReadOptions(),
    shards: int | None = None,
    force: bool = False,
    index_type: str = "auto",
    target_recall: float = 0.95,
    progress: Callable[[int], None] | None = None,
    tune_queries: Sequence[str] | None = None,
) -> Any:
    """Build the index at ``path`` on Ray; returns the opened :class:`~simsearch.index.Index`."""
    from simsearch.index import BuildStats, open_path, commit_build, tune_query_texts
    from simsearch.store.write.bulk import open_sink
    from simsearch.store.index_types import builder

    builder(index_type, target_recall)  # bad options fail before the cluster starts
    if "-" in sources:
        raise InputError("--ray reads files, not standard input; write the input to a file first")
    for source in sources:
        if not Path(source).exists():
            raise InputError(f"{source}: no such file or directory")
    queries = tune_query_texts(tune_queries)  # a bad query file fails before the cluster starts
    started = time.perf_counter()
    # The driver's copy of the model names it in the manifest, encodes the tuning queries and
    # exports ONNX; it is needed only at the commit, so it loads while Ray starts and the encoder
    # actors load theirs (measured: waiting for it first delayed the actors' start by ~8 s of a
    # 54 s build). Its config and tokenizer are checked first, so a broken model fails here; one
    # that fails later (its weights) fails the actors too, and the driver's own error is the one
    # reported (one line, the index unchanged).
    with ThreadPoolExecutor(1, thread_name_prefix="driver-model") as loading:
        loaded = loading.submit(spec.load)
        spec.check()
        with connected(ray_options.address) as ray:
            with open_sink(path, shards=shards, force=force) as sink:
                try:
                    truncated = _write_all(ray, sink, sources, read_options, spec, ray_options, progress)
                except SimsearchError:
                    loaded.result()  # the driver's load error first, when the model is what failed
                    raise
                encoder = loaded.result()
                tune_vectors = None if queries is None else np.asarray(encoder.encode(queries), np.float32)
                count = commit_build(
                    sink, encoder, path, truncated, index_type, target_recall, tune_vectors=tune_vectors
                )
    from simsearch.encode.onnx_export import prepare

    prepare(encoder)
    index = open_path(path)
    index._encoder = encoder
    index.last_build = BuildStats(count, truncated, time.perf_counter() - started)
    return index


def _write_all(
    ray: Any,
    sink: Sink,
    sources: Sequence[str],
    read_options: ReadOptions,
    spec: EncoderSpec,
    options: RayOptions,
    progress: Callable[[int], None] | None,
) -> int:
    """Stream the encoded batches into ``sink``; returns how many texts were truncated."""
    truncated = 0
    try:
        for docs, vectors, cut in _encoded(ray, sources, read_options, spec, options):
            sink.write(docs, vectors)
            truncated += cut
            if progress is not None:
                progress(len(docs))
    except SimsearchError:
        raise
    except Exception as exc:
        inner = unwrap(exc)
        if isinstance(inner, SimsearchError):
            raise type(inner)(str(inner)) from None
        raise SimsearchError(f"the Ray build failed: {first_line(exc)}; the index was not changed") from None
    return truncated


def _encoded(
    ray: Any, sources: Sequence[str], read_options: ReadOptions, spec: EncoderSpec, options: RayOptions
) -> Iterator[tuple[list[Document], np.ndarray, int]]:
    """(documents, vectors, truncated) batches as the actor pool finishes them."""
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False
    plan = read_plan([os.fspath(s) for s in sources], options.workers, read_options)
    # Reading reserves no CPU: the encoder actors hold the cores, and a read task that waited for
    # one of them would wait forever (the pool never lets go); parsing costs little next to encoding.
    context = DataContext.get_current()
    saved = context.target_max_block_size
    # Small blocks: a read task's output is cut into blocks of BLOCK_BYTES (read when the dataset
    # is made), an actor call gets one, so every actor stays busy to the end (one block per read
    # task left one of two actors idle). Ray Data's repartition would need a CPU the actors hold.
    context.target_max_block_size = BLOCK_BYTES
    try:
        dataset = ray.data.from_items(plan).flat_map(
            read_part, fn_kwargs={"options": read_options}, num_cpus=0
        )
    finally:
        context.target_max_block_size = saved
    # Ray Data restarts a dead encoder actor and retries its batch (its default for actor pools).
    encoded = dataset.map_batches(
        EncodeActor,
        fn_constructor_kwargs={"spec": spec, "threads": max(1, int(options.cpus_per_worker))},
        batch_size=None,  # a call per block
        # two blocks per actor: the next is there when a call ends; Ray Data's default (4) queued
        # every block of a small input on the first actor ready while the other idled (measured)
        compute=ActorPoolStrategy(size=options.workers, max_tasks_in_flight_per_actor=2),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker or None,
        batch_format="numpy",
    )
    with _quiet("ray.data"):
        yield from _batches(encoded)


def _batches(encoded: Any) -> Iterator[tuple[list[Document], np.ndarray, int]]:
    for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):  # as blocks arrive
        docs = [
            Document(str(i), str(t), json.loads(str(m)), str(w))
            for i, t, m, w in zip(batch["id"], batch["text"], batch["metadata"], batch["where"])
        ]
        yield docs, np.asarray(batch["vector"], dtype=np.float32), int(np.sum(batch["truncated"]))


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Ray Data's console log off while it runs a build: its INFO lines on every build and, when
    an actor fails, hundreds of lines of stack traces, around the one-line error simsearch gives
    (Ray Data still writes them to its log files under the session directory)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
