"""``simsearch build --ray``: read and encode on a Ray cluster, write the index here.

Sources are planned on the driver into read tasks (:mod:`simsearch.scale.sources`: one per file;
a large file into several parts: row ranges of a Parquet file, every m-th document of other
formats; ``s3://`` and other URIs and directories of Parquet files by file), read by Ray Data, and
encoded by ``map_batches`` over a fixed pool of encoder actors (each loads the model once;
:mod:`simsearch.scale.pipeline`).
Encoded batches stream back to this process, which routes them to the shard writers by id hash
(:mod:`simsearch.store.write.bulk`, the same code as a local build); with ``--shard-writers
cluster`` a stage after the encoders sends them to the writer actors instead and only counts
come back (:mod:`simsearch.scale.feed`). Each read task's encoded rows are saved until the
commit, so a failed build rerun resumes (:mod:`simsearch.scale.resume`). One commit: a failure
anywhere leaves the previous index (or none).
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from simsearch.errors import InputError, ModelError, SimsearchError
from simsearch.readers import ReadOptions
from simsearch.scale.cluster import (
    close_source,
    cause_line,
    connect,
    first_line,
    gcs_address,
    head_reachable,
    unwrap,
)
from simsearch.scale.feed import Feed
from simsearch.scale.head import HeadLostError, watch_head
from simsearch.scale.pipeline import EncoderSpec, RayOptions, encoded, quiet
from simsearch.scale.resume import Checkpoint, plan_key
from simsearch.scale.sources import read_part, read_plan

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.store.write.commit import BuildStats

__all__ = ["EncoderSpec", "RayOptions", "ray_build", "read_part", "read_plan"]

HEAD_LOST = "the Ray cluster's head went away; the index was not changed"


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
    analyzer: str = "auto",
    resume: bool = True,
    say: Callable[[str], None] | None = None,
) -> tuple[Encoder, BuildStats]:
    """Build the index at ``path`` on Ray; returns the driver's encoder (its model, loaded) and
    what the build did (the caller opens the index: scale plugs in below the library face).
    ``analyzer``: the lexical analyzer, as for :meth:`~simsearch.index.Index.build`.

    The encoded blocks of each read task are kept until the commit (:mod:`simsearch.scale.resume`):
    a failed build run again with the same inputs and options encodes only the tasks it had not
    finished (``resume=False``: start afresh); ``say`` gets the one line telling what is reused."""
    from simsearch.store.lexical.analyzer import choose
    from simsearch.store.write.commit import BuildStats, commit_build, tune_query_texts
    from simsearch.store.write.bulk import open_sink

    _check_options(sources, ray_options, shards, index_type, target_recall, analyzer)
    # planned here, on the driver: relative paths resolved against its working directory, each
    # file's identity recorded for the nodes to check; a missing input fails before Ray starts
    plan = read_plan([os.fspath(s) for s in sources], ray_options.workers, read_options)
    plan = [{**task, "task": number} for number, task in enumerate(plan)]
    queries = tune_query_texts(tune_queries)  # a bad query file fails before the cluster starts
    started = time.perf_counter()
    with _checkpoint(path, plan, spec, read_options, resume, say) as (checkpoint, done):
        # The driver's copy of the model names it in the manifest, encodes the tuning queries and
        # exports ONNX; it is needed only at the commit, so it loads while Ray starts and the encoder
        # actors load theirs (measured: waiting for it first delayed the actors' start by ~8 s of a
        # 54 s build). Its config and tokenizer are checked first, so a broken model fails here; one
        # that fails later (its weights) fails the actors too, and the driver's own error is the one
        # reported (one line, the index unchanged).
        # (checked before the load starts: both import transformers, whose lazy module is not safe to
        # import from two threads at once: "cannot import name 'AutoConfig'" seen under load)
        spec.check()
        with ThreadPoolExecutor(1, thread_name_prefix="driver-model") as loading:
            loaded = loading.submit(spec.load)
            ray = connect(ray_options.address)  # kept for the life of the process
            writers = None
            if ray_options.shard_writers == "cluster":
                from simsearch.scale.writers import RayWriters

                writers = RayWriters(ray)
            with open_sink(
                path, shards=shards, force=force, writers=writers, keep=checkpoint.directory
            ) as sink:
                sample: list[str] = []
                feed = Feed(sink, checkpoint, progress, sample, writers)
                todo = [task for task in plan if task["task"] not in done]
                truncated = _encode_all(ray, feed, done, todo, loaded, read_options, spec, ray_options)
                encoder = loaded.result()
                tune_vectors = None if queries is None else np.asarray(encoder.encode(queries), np.float32)
                count = commit_build(
                    sink,
                    encoder,
                    path,
                    truncated,
                    index_type,
                    target_recall,
                    lexical=choose(analyzer, sample),
                    tune_vectors=tune_vectors,
                )
        from simsearch.encode.onnx_export import prepare

        prepare(encoder)
        return encoder, BuildStats(count, truncated, time.perf_counter() - started)


def _encode_all(
    ray: Any,
    feed: Feed,
    done: set[int],
    todo: list[dict[str, Any]],
    loaded: Future[Encoder],
    read_options: ReadOptions,
    spec: EncoderSpec,
    ray_options: RayOptions,
) -> int:
    """Replay the read tasks an earlier run finished (``done``), encode the rest (``todo``) into
    ``feed``; returns how many texts were truncated. When the model is what failed, the driver's
    own load error (``loaded``) is the one raised."""
    try:
        truncated = _replay(ray, feed, done, ray_options)
        return truncated + _write_all(ray, feed, todo, read_options, spec, ray_options)
    except HeadLostError:
        raise
    except SimsearchError:
        failed = loaded.exception()
        if isinstance(failed, SimsearchError):
            raise failed from None
        raise


def _check_options(
    sources: Sequence[str],
    ray_options: RayOptions,
    shards: int | None,
    index_type: str,
    target_recall: float,
    analyzer: str,
) -> None:
    """Options a Ray build cannot take, refused before the cluster starts (it takes seconds)."""
    from simsearch.store.index_types import builder
    from simsearch.store.lexical.analyzer import check_choice

    builder(index_type, target_recall)
    check_choice(analyzer)
    if "-" in sources:
        raise InputError("--ray reads files, not standard input; write the input to a file first")
    if ray_options.shard_writers not in ("driver", "cluster"):
        raise InputError(f"unknown shard writers {ray_options.shard_writers!r}; choose driver or cluster")
    if ray_options.shard_writers == "cluster" and shards is None:
        raise InputError("--shard-writers cluster writes shards: give --shards N")


@contextlib.contextmanager
def _checkpoint(
    path: Path,
    plan: list[dict[str, Any]],
    spec: EncoderSpec,
    read_options: ReadOptions,
    resume: bool,
    say: Callable[[str], None] | None,
) -> Iterator[tuple[Checkpoint, set[int]]]:
    """The build's resume staging, locked for the block (:mod:`simsearch.scale.resume`), and the
    read tasks finished by an earlier run; removed when the block ends, kept when it fails, unless
    the input or the model is what failed (rerun unchanged, it would fail again; changed, it
    would not be reused)."""
    encoding = (spec.pooling, spec.max_length, spec.precision)
    checkpoint = Checkpoint(path, plan_key(plan, spec.model, encoding, read_options))
    done = checkpoint.open(len(plan), resume=resume)
    done_with = False
    try:
        if done and say is not None:
            say(
                f"resuming: {len(done)} of {len(plan)} input parts already encoded "
                "(--no-resume starts afresh)"
            )
        yield checkpoint, done
        done_with = True
    except (InputError, ModelError):
        done_with = True
        raise
    finally:
        checkpoint.close(remove=done_with)


def _write_all(
    ray: Any,
    feed: Feed,
    plan: list[dict[str, Any]],
    read_options: ReadOptions,
    spec: EncoderSpec,
    options: RayOptions,
) -> int:
    """Encode the read tasks of ``plan`` into ``feed``; returns how many texts were truncated."""
    if not plan:
        return 0
    truncated = 0
    try:
        for batch in watch_head(ray, encoded(ray, plan, read_options, spec, options, feed.stage())):
            truncated += feed.take(batch)
    except Exception as exc:
        raise _one_line_error(ray, exc) from None
    feed.finish([task["task"] for task in plan])
    return truncated


def _replay(ray: Any, feed: Feed, done: set[int], options: RayOptions) -> int:
    """Write the saved blocks of the read tasks an earlier run finished; returns their truncated
    count. With the writers on the cluster, tasks there read the blocks and send them (only
    counts come here); otherwise this process writes them."""
    stage = feed.stage()
    blocks = feed.checkpoint.blocks(sorted(done))
    if stage is None or not blocks:
        return feed.replay(done)
    from ray.data import DataContext

    from simsearch.scale.writers import replay

    DataContext.get_current().enable_progress_bars = False
    dataset = ray.data.from_items([{"block": str(path), "task": task} for task, path in blocks])
    replayed = dataset.map_batches(
        replay,
        fn_kwargs={"actors": stage[1]["actors"]},
        batch_size=1,
        num_cpus=0,  # as the writers' stage after the encoders
        concurrency=options.workers,
        batch_format="numpy",
    )
    truncated = 0
    try:
        with quiet("ray.data"):
            batches = replayed.iter_batches(batch_size=None, batch_format="numpy")
            try:
                for batch in watch_head(ray, batches):
                    truncated += feed.take(batch)
            finally:
                close_source(batches)
    except Exception as exc:
        raise _one_line_error(ray, exc) from None
    return truncated


def _one_line_error(ray: Any, exc: Exception) -> SimsearchError:
    """What the user is told: a simsearch error raised here as it is, one raised in a Ray task
    by its first line (Ray wraps it with the remote traceback, Ray Data appends retry advice),
    anything else by its innermost cause; the lost head as such, whatever Ray raised for it."""
    if isinstance(exc, HeadLostError):
        return HeadLostError(HEAD_LOST)
    inner = unwrap(exc)
    if inner is exc and isinstance(exc, SimsearchError) and not hasattr(exc, "cause"):
        return exc
    if not head_reachable(gcs_address(ray)):  # Ray's own error for the lost head, if it came first
        return HeadLostError(HEAD_LOST)
    if isinstance(inner, SimsearchError):
        return type(inner)(first_line(inner))
    return SimsearchError(f"the Ray build failed: {cause_line(exc)}; the index was not changed")
