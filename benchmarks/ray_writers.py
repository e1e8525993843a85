"""``python -m benchmarks.ray_writers``: what a sharded Ray build costs the driver, path by path.

    python -m benchmarks.ray_writers --sentences 20000 --shards 4 --rounds 2

One local Ray cluster (every core), the default model (or ``--model DIR``: a tiny one makes the
driver's share of the work stand out), ``--sentences`` of the benchmark corpus,
``--shards`` shards; each round builds the index once per variant, interleaved (a first round,
not kept, warms up):

- ``cluster-stage``: ``--shard-writers cluster``, blocks sent from a pipeline stage after the
  encoders straight to the writer actors; only counts reach the driver (the default now);
- ``cluster-via-driver``: ``--shard-writers cluster`` with every encoded block coming back to the
  driver, which routes it to the writer actors (the path before the stage);
- ``driver``: ``--shard-writers driver`` (the driver writes every shard);
- ``driver-no-checkpoint``: the same without saving the blocks for a resumed build (what the
  checkpoint costs).

Per build: wall seconds, documents/s, the driver's CPU seconds (user + system, this process),
its peak RSS above the RSS at the build's start (sampled every 20 ms from /proc) and the bytes of
the batches it received from the pipeline (vectors, texts, ids, metadata; or counts). The
encoders, the writers and the read tasks run in Ray's worker processes, not counted here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import corpus
from .stats import machine_lines

VARIANTS = ("cluster-stage", "cluster-via-driver", "driver", "driver-no-checkpoint")


def rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Peak:
    """The highest RSS of this process while the block runs, above its RSS at the start."""

    def __enter__(self) -> Peak:
        self.start, self.peak, self._stop = rss(), 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss() - self.start)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def variant(name: str) -> Iterator[None]:
    """Patch the build into the variant's path for one build."""
    import pytest

    from simsearch.scale import feed

    from simsearch.scale import pipeline

    real = pipeline.batches_of

    def measured(encoded: Any) -> Iterator[dict[str, Any]]:
        for batch in real(encoded):
            RECEIVED[0] += sum(_nbytes(column) for column in batch.values())
            yield batch

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "batches_of", measured)
        if name == "cluster-via-driver":
            patch.setattr(feed.Feed, "stage", lambda self: None)
        if name == "driver-no-checkpoint":
            patch.setattr(feed, "save_batch", lambda directory, batch: None)
        yield


RECEIVED = [0]  # bytes of the batches the driver received from the pipeline (this build)


def _nbytes(column: Any) -> int:
    """An array's bytes; for object arrays (texts), the characters' UTF-8 bytes too."""
    array = np.asarray(column)
    if array.dtype == object:
        return int(sum(len(str(v).encode("utf-8")) for v in array))
    return int(array.nbytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model", default=None, help="a model directory (default: the bundled model)")
    args = parser.parse_args()
    from contextlib import contextmanager

    from simsearch.scale.cluster import loopback_only

    loopback_only()
    import ray

    from simsearch.encode.onnx_export import prepare
    from simsearch.encode.torch_encoder import Encoder
    from simsearch.readers import ReadOptions
    from simsearch.scale.build import EncoderSpec, RayOptions, ray_build

    texts = corpus.sentences(args.sentences)
    prepare(
        Encoder(args.model)
    )  # every build ends by exporting the model for queries: done once, before timing
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    patched = contextmanager(variant)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.variants.split(",")}
    with tempfile.TemporaryDirectory() as home:
        source = Path(home) / "sentences.txt"
        source.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
        for round_number in range(args.rounds + 1):  # round 0 warms up (first model loads): not kept
            for name in runs:
                writers = "cluster" if name.startswith("cluster") else "driver"
                load = os.getloadavg()[0]
                RECEIVED[0] = 0
                with patched(name), Peak() as peak:
                    cpu, started = cpu_seconds(), time.perf_counter()
                    ray_build(
                        [str(source)],
                        Path(home) / name,
                        EncoderSpec(args.model),
                        RayOptions("auto", args.workers, shard_writers=writers),
                        read_options=ReadOptions(),
                        shards=args.shards,
                        force=True,
                    )
                    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
                row = {
                    "seconds": seconds,
                    "docs_per_s": len(texts) / seconds,
                    "driver_cpu_s": cpu,
                    "driver_peak_rss_mib": peak.peak / 2**20,
                    "driver_received_mib": RECEIVED[0] / 2**20,
                    "load_before": load,
                    "load_after": os.getloadavg()[0],
                }
                if round_number:
                    runs[name].append(row)
                print(json.dumps({"round": round_number, "variant": name, **row}), flush=True)
    ray.shutdown()
    print(f"\n{len(texts)} sentences, {args.shards} shards, {args.workers} encoder actors")
    print("\n".join(machine_lines()) + "\n")
    print("| path | documents/s | driver CPU s | driver peak RSS (MiB above start) | MiB to the driver |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in runs.items():
        median = {key: float(np.median([row[key] for row in rows])) for key in rows[0]}
        print(
            f"| {name} | {median['docs_per_s']:.0f} | {median['driver_cpu_s']:.1f} | "
            f"{median['driver_peak_rss_mib']:.0f} | {median['driver_received_mib']:.2f} |"
        )
    out = Path(__file__).parent / "results" / "ray_writers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
