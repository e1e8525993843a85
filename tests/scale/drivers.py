"""Driver programs the multi-node tests run in fresh processes: ``python -m tests.scale.drivers
COMMAND ...``; each prints one JSON object on its last line of stdout."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from simsearch.errors import SimsearchError
from simsearch.readers import ReadOptions
from tests.scale.multinode import ray_cluster_children


def join_and_build(address: str, model: str, index: str, source: str) -> dict[str, Any]:
    """Join the cluster at ``address`` (twice: the same connection), build ``source`` (a path
    relative to this process's working directory) on it into 2 shards written by Ray actors,
    report what was built and where."""
    from simsearch.scale import build, cluster, writers

    ray = cluster.connect(address)
    again = cluster.connect(address)
    pids: list[int] = []
    close = writers.RayWriters.close

    def recording(self: writers.RayWriters) -> None:
        close(self)
        pids.extend(self.pids)

    writers.RayWriters.close = recording  # type: ignore[method-assign]
    from simsearch.index import opened as open_built

    encoder, stats = build.ray_build(
        [source],
        Path(index),
        build.EncoderSpec(model, batch_size=16),
        build.RayOptions(address, workers=2, shard_writers="cluster"),
        read_options=ReadOptions(id_field="id"),
        shards=2,
    )
    built = open_built(Path(index), encoder, stats, exported=True)
    import gc

    from simsearch import Index

    opened = Index.open(index, ray=address)  # search on the same cluster: shard actors there
    gc.collect()  # a dropped connection context would shut Ray down here (issue 22's bug)
    hits = opened.search("bread", k=3, mode="dense")
    return {
        "same": again is ray,
        "hits": len(hits),
        "still": ray.is_initialized() and cluster.gcs_address(ray) == address,
        "gcs": cluster.gcs_address(ray),
        "nodes": sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]),
        "ids": sorted(built.ids()),
        "children": ray_cluster_children(os.getpid()),
        "writer_pids": pids,
        "pid": os.getpid(),
        "verified": built.verify().ok,
    }


def open_and_search(address: str, index: str) -> dict[str, Any]:
    """``Index.open(..., ray=address)`` as a process's first Ray call: it must join that cluster
    for good, not drop the connection and start a private cluster on the next Ray call."""
    import gc

    import ray

    from simsearch import Index
    from simsearch.scale import cluster

    opened = Index.open(index, ray=address)
    gc.collect()
    hits = opened.search("bread", k=3, mode="dense")
    return {
        "hits": len(hits),
        "gcs": cluster.gcs_address(ray) if ray.is_initialized() else None,
        "children": ray_cluster_children(os.getpid()),
    }


def wrong_input(address: str, model: str, index: str, source: str, how: str) -> dict[str, Any]:
    """A build whose read tasks find another file (``how="other"``) or none (``"missing"``) on
    the node they run on than the driver planned; the driver reads the same machine's disk, so
    the plan is altered after the driver made it, as another node's view would differ."""
    from simsearch.scale import build

    planned = build.read_plan

    def altered(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        plan = planned(*args, **kwargs)
        for task in plan:
            if how == "missing":
                task["path"] = task["path"] + ".not-on-this-node"
            else:
                task["digest"] = "0" * 32
        return plan

    build.read_plan = altered
    try:
        build.ray_build(
            [source],
            Path(index),
            build.EncoderSpec(model, batch_size=16),
            build.RayOptions(address, workers=1),
            read_options=ReadOptions(id_field="id"),
        )
    except SimsearchError as exc:
        return {"error": str(exc), "type": type(exc).__name__}
    return {"error": None}


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {
    "join-and-build": join_and_build,
    "open-and-search": open_and_search,
    "wrong-input": wrong_input,
}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
