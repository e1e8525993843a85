"""simsearch against real multi-node Ray clusters started with ``ray start`` (a head and a worker
on loopback addresses of this machine, 1 CPU each), driven from fresh processes: it joins the
named cluster, reads the driver's files whatever node a read task lands on, reads s3:// (a local
S3 server), and a build that loses the head says so and leaves nothing behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.scale.multinode import Cluster, node_env, run_driver, start_cluster, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="loopback addresses beyond 127.0.0.1: Linux")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def jsonl(path: Path, prefix: str, n: int) -> Path:
    words = "bread fresh stale cat dog search engine query fast slow".split()
    path.write_text(
        "".join(
            json.dumps({"id": f"{prefix}{i}", "text": f"{words[i % 10]} {words[(3 * i) % 10]} {prefix} {i}"})
            + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("moto", reason="the test extra installs moto[server]")
    from tests.scale.multinode import _free_ports

    port = _free_ports(["127.0.0.1"], 1)[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import socket

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        assert wait_for(up, 60), "moto's server did not start"
        yield f"127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """Head on 127.0.0.2, worker on 127.0.0.3; each node's working directory holds a docs.jsonl
    of its own (other documents than the driver's file of that name)."""
    root = tmp_path_factory.mktemp("multinode")
    cwds = [root / "head-cwd", root / "worker-cwd"]
    for number, cwd in enumerate(cwds):
        cwd.mkdir()
        jsonl(cwd / "docs.jsonl", f"node{number}-", 60)
    started = start_cluster(["127.0.0.2", "127.0.0.3"], cwds, S3_ENV)
    try:
        yield started, root
    finally:
        started.close()


def test_joins_the_named_cluster_and_reads_the_drivers_file(
    cluster: tuple[Cluster, Path], tiny_model: str
) -> None:
    ray_cluster, root = cluster
    driver = root / "driver-cwd"
    driver.mkdir()
    jsonl(driver / "docs.jsonl", "mine-", 40)
    done = run_driver(
        [
            "-m",
            "tests.scale.drivers",
            "join-and-build",
            ray_cluster.address,
            tiny_model,
            str(root / "idx"),
            "docs.jsonl",
        ],
        driver,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["same"] and report["gcs"] == ray_cluster.address
    assert report["hits"] == 3 and report["still"]  # Index.open(ray=...) searched on it, still joined
    assert report["nodes"] == ["127.0.0.2", "127.0.0.3"]
    assert report["children"] == []  # joined, started no cluster of its own
    assert report["ids"] == sorted(f"mine-{i}" for i in range(40))  # not a node's docs.jsonl
    # its 2 shards written by actors on the cluster, committed here
    assert len(report["writer_pids"]) == 2 and report["pid"] not in report["writer_pids"]
    assert report["verified"]
    searched = run_driver(
        ["-m", "tests.scale.drivers", "open-and-search", ray_cluster.address, str(root / "idx")], driver
    )
    assert searched.returncode == 0, searched.stderr[-3000:]
    assert json.loads(searched.stdout.splitlines()[-1]) == {
        "hits": 3,
        "gcs": ray_cluster.address,
        "children": [],
    }


@pytest.mark.parametrize("how", ["other", "missing"])
def test_a_node_that_sees_another_input_fails_in_one_line(
    cluster: tuple[Cluster, Path], tiny_model: str, how: str
) -> None:
    ray_cluster, root = cluster
    driver = root / f"driver-{how}"
    driver.mkdir()
    jsonl(driver / "input.jsonl", "d", 20)
    index = root / f"never-{how}"
    done = run_driver(
        [
            "-m",
            "tests.scale.drivers",
            "wrong-input",
            ray_cluster.address,
            tiny_model,
            str(index),
            "input.jsonl",
            how,
        ],
        driver,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    error = json.loads(done.stdout.splitlines()[-1])["error"]
    assert error and error.startswith("input.jsonl: ") and "\n" not in error and "\x1b" not in error
    assert (
        "does not exist on node 127.0.0." if how == "missing" else "is not the file the driver read"
    ) in error
    assert "Traceback" not in error and "ray::" not in error
    assert not index.exists() and not list(root.glob(f".never-{how}*"))


def test_builds_from_s3_parquet_read_by_the_workers(
    cluster: tuple[Cluster, Path], moto_endpoint: str, tiny_model: str
) -> None:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    ray_cluster, root = cluster
    options = f"endpoint_override={moto_endpoint}&scheme=http"
    with _env(S3_ENV):
        s3, _ = pafs.FileSystem.from_uri(f"s3://corpus?{options}&allow_bucket_creation=true")
        s3.create_dir("corpus")
        for part in range(2):
            table = pa.table(
                {"id": [f"s{part}-{i}" for i in range(15)], "text": [f"fresh bread {i}" for i in range(15)]}
            )
            pq.write_table(table, f"corpus/set/part-{part}.parquet", filesystem=s3)
        with s3.open_output_stream("corpus/set/_SUCCESS") as marker:
            marker.write(b"")
    common = [
        "--model",
        tiny_model,
        "--id-field",
        "id",
        "--index-dir",
        str(root / "s3-idx"),
        "--workers",
        "2",
    ]
    built = run_driver(
        [
            "-m",
            "simsearch",
            "build",
            f"s3://corpus/set?{options}",
            "--name",
            "s3",
            f"--ray={ray_cluster.address}",
            *common,
        ],
        root,
        env=S3_ENV,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "30 documents" in built.stdout + built.stderr
    missing = run_driver(
        ["-m", "simsearch", "build", f"s3://no-such-bucket/x.parquet?{options}", "--name", "none",
         f"--ray={ray_cluster.address}", *common],
        root,
        env=S3_ENV,
    )  # fmt: skip
    assert missing.returncode == 1
    assert (
        missing.stderr.startswith("Error: s3://no-such-bucket/x.parquet: ")
        and missing.stderr.count("\n") == 1
    )
    assert "endpoint_override" not in missing.stderr and not (root / "s3-idx" / "none").exists()


@pytest.mark.parametrize("named", ["address", "auto"])
def test_unreachable_cluster_is_one_line_quickly(tmp_path: Path, named: str) -> None:
    """Nothing listens there: one line within seconds (Ray itself retries for two minutes)."""
    from tests.scale.multinode import _free_ports

    address = f"127.0.0.2:{_free_ports(['127.0.0.2'], 1)[0]}"
    source = jsonl(tmp_path / "a.jsonl", "a", 3)
    flag, env = (f"--ray={address}", {}) if named == "address" else ("--ray=auto", {"RAY_ADDRESS": address})
    started = time.monotonic()
    done = run_driver(
        ["-m", "simsearch", "build", str(source), "--name", "x", flag, "--index-dir", str(tmp_path)],
        tmp_path,
        env=env,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot connect to the Ray cluster at " in done.stderr and address in done.stderr
    assert not (tmp_path / "x").exists()


def test_losing_the_head_mid_build_changes_nothing(tmp_path: Path, tiny_model: str) -> None:
    node = tmp_path / "node"
    node.mkdir()
    head = start_cluster(["127.0.0.4"], [node])
    try:
        source = jsonl(tmp_path / "big.jsonl", "b", 4000)
        index_dir = tmp_path / "indexes"
        index_dir.mkdir()
        build = subprocess.Popen(
            [sys.executable, "-m", "simsearch", "build", str(source), "--name", "lost", f"--ray={head.address}",
             "--workers", "1", "--batch-size", "8", "--model", tiny_model, "--id-field", "id",
             "--index-dir", str(index_dir)],
            cwd=tmp_path, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert wait_for(lambda: any(index_dir.glob(".lost.tmp-*")) or build.poll() is not None, 120)
        time.sleep(3)  # encoding under way
        head.kill_head()
        out, err = build.communicate(timeout=120)
    finally:
        head.close()
    assert build.returncode == 1, err[-3000:]
    # one line of simsearch's, no traceback; the driver's Ray C++ core prints its own ERROR lines to
    # the terminal in its log format, before and after ours, until the process ends (seen:
    # core_worker.cc "constructor arguments in the object store", ray-project/ray#57733;
    # task_manager.cc "Failed to push error to driver"), which simsearch cannot keep in Ray's logs
    ray_core_line = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [EWI] \d+ \d+\] \w+\.cc:\d+: ")
    ours = [line for line in err.splitlines() if not ray_core_line.match(line)]
    assert ours == ["Error: the Ray cluster's head went away; the index was not changed"], err[-3000:]
    assert not (index_dir / "lost").exists() and not list(index_dir.glob(".lost.tmp-*"))
    # what was encoded is kept for the rerun (simsearch.scale.resume), locked by nobody
    assert [p.name.split("-")[0] for p in index_dir.glob(".lost*")] in ([], [".lost.resume"])


class _env:
    """Environment variables set for a block (pyarrow reads the S3 credentials from them)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        import os

        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc_info: object) -> None:
        import os

        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
