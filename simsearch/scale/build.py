"""``simsearch build --ray``: read and encode on a Ray cluster, write the index here.

Sources are split into read tasks (one per file; a large file into several parts: row ranges
of a Parquet file, every m-th document of other formats), read by Ray Data, and encoded by ``map_batches`` over a fixed pool of
encoder actors (each loads the model once). Encoded batches stream back to this process, which
routes them to the shard writers by id hash (:mod:`simsearch.store.bulk`, the same code as a
local build) and commits once: a failure anywhere leaves the previous index (or none).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from simsearch.errors import InputError, SimsearchError
from simsearch.readers import Document, ReadOptions, read_documents
from simsearch.scale.cluster import connected, first_line, unwrap

PART_BYTES = 16 << 20  # a file larger than this is read by several tasks
_STREAM = 2048  # documents handed to the writers at a time
# Rows an encoder actor gets at a time. The encoder sorts them by length and runs them in
# batches of ``batch_size``: the more rows sorted together, the less padding (as a local build,
# which sorts 2,048 at a time); fewer rows per call keep the actors evenly busy at the end.
ENCODE_ROWS = 1024


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
            # at least two blocks per encoder actor: a read task's output is one block, and Ray
            # Data gives a block to one actor (measured: one 2,000-sentence file kept 1 of 2 busy)
            parts = max(2 * workers, min(workers * 4, -(-path.stat().st_size // PART_BYTES)))
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
        from simsearch.parquet_reader import read_parquet

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
    from simsearch.index import BuildStats, _open_path, commit_build, encode_tune_queries
    from simsearch.store.bulk import open_sink
    from simsearch.store.index_types import builder

    builder(index_type, target_recall)  # bad options fail before the cluster starts
    if "-" in sources:
        raise InputError("--ray reads files, not standard input; write the input to a file first")
    for source in sources:
        if not Path(source).exists():
            raise InputError(f"{source}: no such file or directory")
    started = time.perf_counter()
    # The driver's copy of the model names it in the manifest and exports ONNX: loaded while Ray
    # starts (both mostly wait on disk and on other processes), and before any encoding starts,
    # so that a bad model fails once, here, rather than in every actor.
    with ThreadPoolExecutor(1, thread_name_prefix="driver-model") as loading:
        loaded = loading.submit(spec.load)
        with connected(ray_options.address) as ray:
            encoder = loaded.result()
            tune_vectors = encode_tune_queries(encoder, tune_queries)  # few: encoded here, not on Ray
            with open_sink(path, shards=shards, force=force) as sink:
                truncated = _write_all(ray, sink, sources, read_options, spec, ray_options, progress)
                count = commit_build(
                    sink, encoder, path, truncated, index_type, target_recall, tune_vectors=tune_vectors
                )
    from simsearch.encode.onnx_encoder import prepare

    prepare(encoder)
    index = _open_path(path)
    index._encoder = encoder
    index.last_build = BuildStats(count, truncated, time.perf_counter() - started)
    return index


def _write_all(
    ray: Any,
    sink: Any,
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
    dataset = ray.data.from_items(plan).flat_map(read_part, fn_kwargs={"options": read_options}, num_cpus=0)
    # Ray Data restarts a dead encoder actor and retries its batch (its default for actor pools).
    encoded = dataset.map_batches(
        EncodeActor,
        fn_constructor_kwargs={"spec": spec, "threads": max(1, int(options.cpus_per_worker))},
        batch_size=max(spec.batch_size, ENCODE_ROWS),
        compute=ActorPoolStrategy(size=options.workers),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker or None,
        batch_format="numpy",
    )
    for batch in encoded.iter_batches(batch_size=_STREAM, batch_format="numpy"):
        docs = [
            Document(str(i), str(t), json.loads(str(m)), str(w))
            for i, t, m, w in zip(batch["id"], batch["text"], batch["metadata"], batch["where"])
        ]
        yield docs, np.asarray(batch["vector"], dtype=np.float32), int(np.sum(batch["truncated"]))
