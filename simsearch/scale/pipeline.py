"""What a Ray build runs on the cluster: the encoder actors and the Ray Data pipeline that feeds them.

:func:`encoded` reads the planned read tasks (:mod:`simsearch.scale.sources`) with Ray Data,
cuts their output into small blocks, encodes each block in a fixed pool of
:class:`EncodeActor` (each loads the model once, :class:`EncoderSpec`), and optionally runs a
stage after the encoders (the shard writers' feed, :mod:`simsearch.scale.feed`). The build's
orchestration (checks, resume staging, the commit) is :mod:`simsearch.scale.build`'s.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from simsearch.readers import ReadOptions
from simsearch.scale.cluster import close_source
from simsearch.scale.sources import read_part

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
    shard_writers: str = "driver"  # or "cluster": a Ray actor per shard (simsearch.scale.writers)


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

        from simsearch import config

        torch.set_num_threads(threads)
        config.freeze_heap_when_ready()  # the actor's process is ours (simsearch.config)
        self.encoder = spec.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors, cut = self.encoder.encode_counting([str(t) for t in batch["text"]])
        truncated = np.zeros(len(vectors), dtype=np.int64)
        if len(truncated):
            truncated[0] = cut  # a batch's count rides on its first row; the writer sums them
        return {**batch, "vector": vectors, "truncated": truncated}


def encoded(
    ray: Any,
    plan: list[dict[str, Any]],
    read_options: ReadOptions,
    spec: EncoderSpec,
    options: RayOptions,
    stage: tuple[Callable[..., Any], dict[str, Any]] | None,
) -> Iterator[dict[str, np.ndarray]]:
    """Encoded batches (Ray Data columns) as the actor pool finishes them; with a ``stage``
    (function, its arguments) run on each after the encoders, what that returns instead."""
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False
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
    if stage is not None:
        # reserves no CPU either (the encoder actors hold them); as many at once as encoders:
        # unbounded, Ray Data started a worker process per waiting block
        encoded = encoded.map_batches(
            stage[0],
            fn_kwargs=stage[1],
            batch_size=None,
            num_cpus=0,
            concurrency=options.workers,
            batch_format="numpy",
        )
    batches = encoded.iter_batches(batch_size=None, batch_format="numpy")  # as blocks arrive
    try:
        with quiet("ray.data"):
            yield from batches_of(batches)
    finally:
        close_source(batches)


def batches_of(batches: Iterator[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """The pipeline's batches as the build sees them (one place to watch them from, for tests
    and benchmarks)."""
    yield from batches


@contextlib.contextmanager
def quiet(name: str) -> Iterator[None]:
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
