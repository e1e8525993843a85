"""Real multi-node Ray clusters on one machine, started with ``ray start`` for a test and killed
afterwards, and simsearch drivers run against them in fresh processes.

Each node has its own loopback address (127.0.0.1 does not work for a second node), ports and
temp directory, and 1 CPU. Only the processes started here are killed (by process group, and
any left over that name this cluster's temp directory): ``ray stop`` would stop every cluster
on the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 120


def node_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment of the nodes and drivers: simsearch importable, no token, no telemetry,
    and not Ray's single-node mode (the test session's own cluster uses it)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")
    }
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        **extra,
    )
    return env


def _free_ports(hosts: Sequence[str], count: int) -> list[int]:
    """``count`` consecutive ports free on every host (a random block, tried until one is)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        try:
            for port in range(base, base + count):
                for host in hosts:
                    with socket.socket() as probe:
                        probe.bind((host, port))
        except OSError:
            continue
        return list(range(base, base + count))
    raise RuntimeError("no free block of ports")


@dataclass
class Cluster:
    """A head and its workers; :meth:`kill_head` and :meth:`close` kill only what it started."""

    temp: Path
    address: str = ""
    groups: list[int] = field(default_factory=list)

    def kill_head(self) -> None:
        _kill_group(self.groups[0])

    def kill(self, number: int) -> None:
        """Kill node ``number`` (0: the head) and its daemons."""
        _kill_group(self.groups[number])

    def close(self) -> None:
        for group in self.groups:
            _kill_group(group)
        for pid in _pids_naming(str(self.temp)):  # workers that left the group, if any
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)


def start_cluster(ips: Sequence[str], cwds: Sequence[Path], env: Mapping[str, str] = {}) -> Cluster:
    """A head on ``ips[0]`` and a worker on each other address, 1 CPU each, each started in its
    own working directory ``cwds[i]``."""
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp")))
    try:
        ports = _free_ports(ips, 40 * len(ips))
        for number, (ip, cwd) in enumerate(zip(ips, cwds)):
            p = ports[40 * number : 40 * (number + 1)]
            args = [
                RAY, "start", "--node-ip-address", ip, "--num-cpus", "1", "--temp-dir", str(cluster.temp),
                "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
                "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
                "--metrics-export-port", str(p[4]), "--runtime-env-agent-port", str(p[5]),
                "--min-worker-port", str(p[10]), "--max-worker-port", str(p[39]), "--disable-usage-stats",
            ]  # fmt: skip
            if number == 0:
                cluster.address = f"{ip}:{p[6]}"
                args += [
                    "--head",
                    "--port",
                    str(p[6]),
                    "--include-dashboard",
                    "false",
                    "--dashboard-port",
                    str(p[7]),
                ]
            else:
                args += ["--address", cluster.address]
            started = subprocess.Popen(
                args, cwd=cwd, env=node_env(env), start_new_session=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            cluster.groups.append(started.pid)  # its daemons keep its process group
            out, _ = started.communicate(timeout=START_TIMEOUT)
            if started.returncode != 0:
                raise RuntimeError(f"ray start failed:\n{out[-3000:]}")
        return cluster
    except BaseException:
        cluster.close()
        raise


def run_driver(
    args: Sequence[str], cwd: Path, *, env: Mapping[str, str] = {}, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh process (a driver of its own, as a user's would be)."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=node_env(env), capture_output=True, text=True, timeout=timeout
    )


def ray_cluster_children(pid: int) -> list[str]:
    """Ray cluster daemons (GCS, raylet) among ``pid``'s descendants: a driver that joins a
    cluster starts none."""
    found = []
    for descendant in descendants(pid):
        try:
            name = Path(f"/proc/{descendant}/comm").read_text().strip()
        except OSError:
            continue
        if name in ("gcs_server", "raylet"):
            found.append(name)
    return found


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree


def _kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(0.2)


def _pids_naming(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def wait_for(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
