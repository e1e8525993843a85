"""Capacity figures measured on a local multi-node Ray cluster (issue 22 item 8).

    nice -n 10 python -m benchmarks.capacity --out capacity.json    # ~6 min on a loaded 2-core machine
    python -m benchmarks.capacity --home DIR --docs 1048576 --types flat --cluster-docs 1048576 \
        --shards 1 --fault-shards 1 --deadline 5 --encode-docs 2000    # 1M: ~6 min; DIR keeps the build

At 1M, split the work into runs of ~10 minutes: ``--home`` keeps every build (and its figures) for
the next run, which serves it without building again; ``--encode-docs N`` measures the encode part
apart (``Index.build`` of N real sentences on one thread); ``--skip-delete`` leaves out the
one-document delete (an HNSW shard rebuilds on it).

Measures, through the public API only (``Index.build_from_vectors``, ``Index.open(..., ray=,
replicas=)``, ``index.searcher``):

* local build time of one flat and one HNSW plain index, split by cProfile (main thread only)
  into the commit's FAISS step (``faiss_for_commit``: build and tune), its BM25 step
  (``sync_lexical``) and the rest (SQLite rows, manifest); peak RSS (``getrusage``, each build
  in a fresh process) and disk bytes per document;
* on a 3-node cluster on loopback (``tests/scale/multinode.py``; 1 CPU per node): actor start
  time, each shard actor's RSS after a lexical query (BM25 postings loaded), dense and hybrid
  p50/p95 per shard and replica count, the reload after a one-document add and delete made by
  another writer, and failover latency with a replica SIGKILLed and one SIGSTOPped.

Vectors are synthetic (Gaussian, normalised; 384-d) beside real corpus texts (encoding takes
hours on a shared 2-core machine): sizes, RSS, flat build and per-call costs do not depend on
them; HNSW build and search times on random vectors are pessimistic. Every figure is stored
with the load average and the CPU it was taken under.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
BATCH = 8192
NODES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def machine() -> dict[str, Any]:
    """CPU model, the flags that matter for FAISS/encoders, cores, and the load right now."""
    from .stats import cpu_flag_set, cpu_name

    present = cpu_flag_set()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")
    flags = [f for f in wanted if f in present]
    return {"cpu": cpu_name(), "flags": flags, "cores": os.cpu_count(), "load": load()}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cluster_daemons(temp: Path) -> list[dict[str, Any]]:
    """RSS of the node processes (raylet, GCS, agents) whose command line names the cluster's temp dir."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(temp).encode() in cmdline.read_bytes():
                pid = int(cmdline.parent.name)
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                found.append({"process": name, "rss_mib": round(rss_mib(pid))})
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda p: -p["rss_mib"])


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def percentiles(values: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(np.asarray(values) * 1000, [50, 95])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2)}


class IdentityEncoder:
    """The bundled model's identity for build_from_vectors (which never runs it on documents)."""

    precision, pooling, max_length, dim = "fp32", "mean", 256, DIM

    def __init__(self) -> None:
        from simsearch.encode.models import DEFAULT_MODEL, bundled_model_path

        self.model_id, self.model_path = DEFAULT_MODEL, bundled_model_path()


def batches(n: int, spent: list[float]) -> Iterator[tuple[list[Any], np.ndarray]]:
    """Real corpus texts with synthetic unit vectors, streamed in batches (generation time in ``spent``)."""
    from benchmarks.corpus import shuffled
    from simsearch.readers import Document

    texts = shuffled()
    rng = np.random.default_rng(0)
    for start in range(0, n, BATCH):
        began = time.perf_counter()
        count = min(BATCH, n - start)
        vectors = rng.standard_normal((count, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        docs = [Document(f"d{i}", texts[i % len(texts)]) for i in range(start, start + count)]
        spent[0] += time.perf_counter() - began
        yield docs, vectors


def build_child(args: argparse.Namespace) -> None:
    """One build in this fresh process; prints its figures as one JSON line."""
    from simsearch import Index

    spent = [0.0]
    shards = args.shards if args.shards > 1 else None
    before = load()
    profile = cProfile.Profile() if args.profile else None
    began = time.perf_counter()
    if profile:
        profile.enable()
    Index.build_from_vectors(
        batches(args.docs, spent),
        args.path,
        IdentityEncoder(),
        force=True,
        index_type=args.type,
        shards=shards,
    ).close()
    if profile:
        profile.disable()
    wall = time.perf_counter() - began - spent[0]
    out: dict[str, Any] = {
        "docs": args.docs,
        "type": args.type,
        "shards": args.shards,
        "seconds": round(wall, 2),
        "docs_per_s": round(args.docs / wall),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "disk_bytes_per_doc": round(disk_bytes(Path(args.path)) / args.docs),
        "vector_generation_s_excluded": round(spent[0], 2),
        "load_before": before,
        "load_after": load(),
        "profiled": bool(profile),
    }
    if profile:
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        cumulative = {name: ct for (_, _, name), (_, _, _, ct, _) in stats.items()}
        faiss_s, lexical_s = cumulative.get("faiss_for_commit", 0.0), cumulative.get("sync_lexical", 0.0)
        out.update(faiss_build_and_tune_s=round(faiss_s, 2), lexical_bm25_s=round(lexical_s, 2))
        out["sqlite_write_and_rest_s"] = round(wall - faiss_s - lexical_s, 2)
    print(json.dumps(out))


def encode_child(args: argparse.Namespace) -> None:
    """Index.build of real sentences on one torch thread: the encode part per core, and the rest."""
    import torch

    import simsearch.encode.onnx_export as onnx_export
    from benchmarks.corpus import shuffled
    from simsearch import Index
    from simsearch.encode.torch_encoder import Encoder as TorchEncoder

    torch.set_num_threads(1)
    encoder, spent = TorchEncoder(), {"encode": 0.0, "export": 0.0}

    def timed_call(key: str, call: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            began = time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                spent[key] += time.perf_counter() - began

        return wrapper

    encoder.encode_counting = timed_call("encode", encoder.encode_counting)  # type: ignore[method-assign]
    onnx_export.prepare = timed_call("export", onnx_export.prepare)  # (Index.build imports it late)
    texts, before = shuffled()[: args.docs], load()
    cpu, began = time.process_time(), time.perf_counter()
    Index.build(texts, args.path, encoder, force=True, index_type="flat").close()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    out = {"docs": args.docs, "torch_threads": 1, "precision": encoder.precision, "seconds": round(wall, 2)}
    out.update(encode_s=round(spent["encode"], 2), encode_docs_per_s=round(args.docs / spent["encode"]))
    out.update(onnx_export_s=round(spent["export"], 2), cpu_s=round(cpu, 2), load_before=before)
    out["write_faiss_lexical_s"] = round(wall - spent["encode"] - spent["export"], 2)
    out.update(
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), load_after=load()
    )
    print(json.dumps(out))


def child(command: str, path: Path, docs: int, extra: list[str]) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.capacity", command, str(path), "--docs", str(docs), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1") if command == "encode" else None
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3000, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{command} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(command, result, flush=True)
    return result


def build(path: Path, docs: int, kind: str, shards: int, profile: bool) -> dict[str, Any]:
    """One build in a fresh process, or (``--home``) the one an earlier run left at ``path``."""
    done = path.with_name(path.name + ".json")  # written only once the build has succeeded
    if done.is_file() and json.loads(done.read_text())["docs"] == docs:
        return {**json.loads(done.read_text()), "reused_from_an_earlier_run": True}
    result = child("build", path, docs, ["--type", kind, "--shards", str(shards)] + ["--profile"] * profile)
    done.write_text(json.dumps(result))
    return result


def timed(call: Any, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        began = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - began)
    return times


def actor_pids(index: Any) -> list[tuple[int, int, str, str]]:
    """(shard, pid, node, state) of every replica, from the Ray searcher's placement."""
    return [
        (g["shard"], r["pid"], r["node"], r["state"])
        for g in index.searcher.placement()
        for r in g["replicas"]
    ]


def serve(
    path: Path, address: str, replicas: int, encoder: Any, queries: list[str], args: argparse.Namespace
) -> tuple[Any, dict[str, Any]]:
    """Open on the cluster and measure start, actor RSS and query latencies."""
    from simsearch import Index
    from simsearch.errors import SimsearchError

    began = time.perf_counter()
    index = Index.open(path, ray=address, replicas=replicas, encoder=encoder)
    index.searcher.deadline = args.deadline  # (the documented RaySearcher attribute)
    result: dict[str, Any] = {"shards": index.shards, "replicas": replicas, "load_before": load()}
    result["actors_start_s"] = round(time.perf_counter() - began, 2)
    vectors, rounds = encoder.encode(queries), args.rounds
    began = time.perf_counter()
    try:  # every actor loads its BM25 postings on its first lexical call
        index.search(queries[0], k=10, mode="lexical")
    except SimsearchError as exc:
        result["first_lexical_error"] = str(exc)
        return index, result
    finally:
        result.update(first_lexical_s=round(time.perf_counter() - began, 2), deadline_s=args.deadline)
    for i in range(3):  # warm-up
        index.search_vectors(vectors[i : i + 1], k=10)
        index.search(queries[i], k=10, mode="hybrid")
    result["actor_rss_mib"] = [
        {"shard": s, "node": node, "rss_mib": round(rss_mib(pid))} for s, pid, node, _ in actor_pids(index)
    ]
    n = len(queries)
    result["encode_query"] = percentiles(timed(lambda i: encoder.encode([queries[i % n]]), rounds))
    result["dense_vector"] = percentiles(
        timed(lambda i: index.search_vectors(vectors[i % n : i % n + 1], k=10), rounds)
    )
    result["dense_text"] = percentiles(
        timed(lambda i: index.search(queries[i % n], k=10, mode="dense"), rounds)
    )
    result["hybrid_text"] = percentiles(
        timed(lambda i: index.search(queries[i % n], k=10, mode="hybrid"), rounds)
    )
    result["load_after"] = load()
    print("serve", result, flush=True)
    return index, result


def reload_after_add(index: Any, encoder: Any, delete: bool) -> dict[str, Any]:
    """Another process-like writer adds one document; the Ray index then follows it."""
    from simsearch import Index
    from simsearch.readers import Document

    before = {pid for _, pid, _, _ in actor_pids(index)}
    writer = Index.open(index.path, encoder=encoder)
    began = time.perf_counter()
    writer.add([Document("capacity-new", "A freshly added sentence about capacity planning.")])
    add_s = time.perf_counter() - began
    began = time.perf_counter()
    index.reload()
    reload_s = time.perf_counter() - began
    after = {pid for _, pid, _, _ in actor_pids(index)}
    hit = index.search("freshly added sentence about capacity planning", k=1, mode="lexical")[0].id
    delete_s = reload_after_delete_s = float("nan")
    if delete:  # HNSW cannot remove vectors: this rebuilds the shard (minutes at 1M: --skip-delete)
        began = time.perf_counter()
        writer.delete(["capacity-new"])
        delete_s = time.perf_counter() - began
        began = time.perf_counter()
        index.reload()
        reload_after_delete_s = time.perf_counter() - began
    writer.close()
    result = {
        "add_one_doc_s": round(add_s, 2),
        "reload_s": round(reload_s, 2),
        "actors_replaced": len(before - after),
        "actors_total": len(after),
        "new_doc_found": hit == "capacity-new",
        "delete_one_doc_s": round(delete_s, 2) if delete else None,
        "reload_after_delete_s": round(reload_after_delete_s, 2) if delete else None,
        "shard_docs": len(index) // max(1, index.shards),
        "load": load(),
    }
    print("reload", result, flush=True)
    return result


def failover(index: Any, vectors: np.ndarray, how: signal.Signals) -> dict[str, Any]:
    """Signal one replica of every shard, then time the next queries (the first complete answers)."""
    from simsearch.scale.searcher import allow_partial

    victims = {}
    for shard, pid, _, state in actor_pids(index):
        if state == "healthy" and shard not in victims:
            victims[shard] = pid
    signalled = time.perf_counter()
    for pid in victims.values():
        os.kill(pid, how)
    latencies, incomplete = [], 0
    for i in range(6):
        began = time.perf_counter()
        with allow_partial() as missing:
            index.search_vectors(vectors[i : i + 1], k=10)
        latencies.append(round(time.perf_counter() - began, 3))
        incomplete += bool(missing)
    while (
        any(state != "healthy" for *_, state in actor_pids(index)) and time.perf_counter() - signalled < 120
    ):
        time.sleep(0.2)
    recovered = time.perf_counter() - signalled  # replacements started and serving, from the signal
    for pid in victims.values():  # a paused one the replacement missed: ours to end
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    result = {
        "signal": how.name,
        "replicas_signalled": len(victims),
        "query_latencies_s": latencies,
        "first_answer_s": latencies[0],
        "worst_s": max(latencies),
        "incomplete_answers": incomplete,
        "all_healthy_again_s_after_signal": round(recovered, 1),
        "load": load(),
    }
    print("failover", result, flush=True)
    return result


def cluster_part(args: argparse.Namespace, home: Path, report: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.scale.multinode import start_cluster

    from benchmarks.corpus import sentences

    queries = sentences()[-200:][:: max(1, 200 // args.queries)][: args.queries]
    paths = {}
    for shards in args.shards:
        paths[shards] = home / f"c{shards}"
        local = home / f"local-{args.cluster_type}"
        if shards == 1 and args.docs == args.cluster_docs and local.is_dir():
            paths[shards] = local  # the profiled local build of the same size and type: served as is
            continue
        report["cluster_builds"].append(
            build(paths[shards], args.cluster_docs, args.cluster_type, shards, False)
        )
    if not args.shards:
        return
    began = time.perf_counter()
    # Ray starts its workers 15 nice levels down: beside other jobs on 2 shared cores the shard
    # actors then starve and miss every deadline; a real node runs nothing else, so measure at 0
    cluster = start_cluster(NODES, [ROOT] * len(NODES), {"RAY_worker_niceness": str(args.worker_niceness)})
    report["cluster_start_s"] = round(time.perf_counter() - began, 1)
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    os.environ.pop("RAY_ADDRESS", None)
    try:
        from simsearch import Index

        local = Index.open(paths[args.shards[0]])
        encoder = local.encoder
        local.close()
        for shards in args.shards:
            for replicas in args.replicas:
                if shards * replicas > 4 * len(NODES):  # 0.25 CPU per actor, 1 CPU per node
                    continue
                index, result = serve(paths[shards], cluster.address, replicas, encoder, queries, args)
                report["serve"].append(result)
                if "first_lexical_error" in result:  # a shard did not answer within the deadline
                    print("serve", result, flush=True)
                    index.close()
                    continue
                if replicas == 1 and shards in args.fault_shards:
                    report.setdefault("reload", []).append(
                        reload_after_add(index, encoder, not args.skip_delete)
                    )
                if replicas == 2 and shards in args.fault_shards:
                    vectors = encoder.encode(queries)
                    report.setdefault("failover", []).append(failover(index, vectors, signal.SIGKILL))
                    report["failover"].append(failover(index, vectors, signal.SIGSTOP))
                report["node_processes"] = cluster_daemons(cluster.temp)  # (3 nodes; the last config served)
                index.close()
                Path(args.out).write_text(json.dumps(report, indent=1))
    except BaseException:  # keep the cluster's own logs (its temp dir goes with it)
        logs = Path(args.out).with_suffix(".ray-logs")
        for log in (cluster.temp / "session_latest" / "logs").glob("*"):
            if log.is_file() and log.suffix in (".out", ".err", ".log") and log.stat().st_size < 50_000_000:
                logs.mkdir(exist_ok=True)
                shutil.copy(log, logs / log.name)
        raise
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("build", help="one build in this process (used by the run)")
    one.add_argument("path")
    one.add_argument("--docs", type=int, required=True)
    one.add_argument("--type", default="flat")
    one.add_argument("--shards", type=int, default=1)
    one.add_argument("--profile", action="store_true")
    encode = sub.add_parser(
        "encode", help="one encoding build on one thread in this process (used by the run)"
    )
    encode.add_argument("path")
    encode.add_argument("--docs", type=int, required=True)
    parser.add_argument("--docs", type=int, default=131_072, help="documents of the local builds")
    parser.add_argument("--cluster-docs", type=int, default=131_072, help="documents of the served indexes")
    parser.add_argument("--shards", type=numbers, default=[1, 2, 4, 8], help="shard counts served ('' skips)")
    parser.add_argument("--replicas", type=numbers, default=[1, 2])
    parser.add_argument("--cluster-type", default="flat", help="index type of the served indexes")
    parser.add_argument(
        "--fault-shards", type=numbers, default=[4], help="shard counts of the reload/failover runs (0: none)"
    )
    parser.add_argument("--skip-delete", action="store_true", help="reload after an add only (HNSW at 1M)")
    parser.add_argument(
        "--encode-docs", type=int, default=0, help="sentences of the encoding build (0: none)"
    )
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--deadline", type=float, default=2.0, help="seconds a shard replica has per call")
    parser.add_argument("--rounds", type=int, default=40, help="timed queries per mode and configuration")
    parser.add_argument("--types", default="flat,hnsw", help="index types of the local builds ('' skips)")
    parser.add_argument("--out", default="capacity.json")
    parser.add_argument("--worker-niceness", type=int, default=0, help="RAY_worker_niceness (Ray's own: 15)")
    parser.add_argument("--home", help="where the indexes are built and kept for later runs (default: temp)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build_child(args)
    if args.command == "encode":
        return encode_child(args)
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv[1:], "local_builds": []}
    report.update(cluster_builds=[], serve=[])
    with tempfile.TemporaryDirectory(prefix="capacity-", dir="/tmp") as tmp:
        home = Path(args.home or tmp)  # --home keeps the builds for later runs (and reuses them)
        if args.encode_docs:
            report["encode_build"] = child("encode", home / "encode", args.encode_docs, [])
        for kind in filter(None, args.types.split(",")):
            report["local_builds"].append(build(home / f"local-{kind}", args.docs, kind, 1, True))
            Path(args.out).write_text(json.dumps(report, indent=1))
        cluster_part(args, home, report)
    report["machine_after"] = machine()
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
