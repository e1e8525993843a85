"""One local Ray cluster for the whole test session (4 logical CPUs, loopback only), shut down afterwards.

Starting Ray costs 5-25 s on this shared machine, so the scale tests share it and stay few and small.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from simsearch.scale.cluster import loopback_only

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
loopback_only()  # before ray is imported: the test cluster listens on 127.0.0.1 only


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        # 4 logical CPUs: test_ray_topology's 8 shard actors x 0.25 CPU need 2, and Ray Data's
        # read tasks and encoder actors want some beside them
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model(tiny_bert: Path) -> str:
    return str(tiny_bert)


@pytest.fixture(autouse=True)
def _ray_gives_back_its_cpus(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the session cluster, every CPU it reserved comes back within seconds: a
    test that leaves actors behind fails here, not in a later test that cannot start its own.

    (How it was found: test_ray_cluster's fake heads set the process-wide "head lost" flag, after
    which every Ray index's and shard writer's close in the session skipped its actors; they
    stayed alive, holding 0.5-1.75 CPU, and an 8-shard open later timed out.)"""
    yield
    if "ray_cluster" not in request.fixturenames:
        return
    import ray

    if not ray.is_initialized():
        return
    deadline = time.monotonic() + 30
    while True:
        total = ray.cluster_resources().get("CPU", 0.0)
        free = ray.available_resources().get("CPU", 0.0)
        if free >= total or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert free >= total, (
        f"{total - free:g} of {total:g} CPUs still reserved 30 s after the test: actors left behind"
    )
