"""Timing helpers and the machine description every report starts with."""

from __future__ import annotations

import os
import platform
import statistics
import time
from importlib import metadata
from typing import Callable

PACKAGES = (
    "simsearch",
    "torch",
    "transformers",
    "sentence-transformers",
    "onnxruntime",
    "faiss-cpu",
    "numpy",
    "tokenizers",
    "txtai",
    "chromadb",
    "lancedb",
)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    v = [x * scale for x in values]
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flag_set() -> set[str]:
    """The CPU flags this process's libraries see: /proc/cpuinfo's ``flags`` line (the kernel's
    view of the hardware), less the ones a CPUID mask hides (``--isa avx2``, :mod:`benchmarks.isa`;
    /proc/cpuinfo does not change under it); empty where there is none."""
    return visible_flags(hardware_flag_set())


def hardware_flag_set() -> set[str]:
    """Every flag on /proc/cpuinfo's ``flags`` line, masked or not; empty where there is none."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


#: Set in a process ``--isa avx2`` restarted (:mod:`benchmarks.isa`): the ISA CPUID is masked to.
ISA_ENV = "SIMSEARCH_BENCH_ISA"
#: What benchmarks/cpuid_avx2.c clears, as /proc/cpuinfo names it: every AVX-512 subset, AMX,
#: AVX-VNNI (and its INT8/INT16 forms), AVX-IFMA, AVX-NE-CONVERT, AVX10.
MASKED_BY_AVX2 = ("avx512", "amx", "avx_vnni", "avx_ifma", "avx_ne_convert", "avx10")


def visible_flags(flags: set[str]) -> set[str]:
    """``flags`` as a process started by ``--isa avx2`` sees them (unchanged otherwise)."""
    if os.environ.get(ISA_ENV) != "avx2":
        return flags
    return {flag for flag in flags if not flag.startswith(MASKED_BY_AVX2)}


def cpu_flags() -> str:
    flags = cpu_flag_set()
    if not flags:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of avx2/avx512"


def machine_lines() -> list[str]:
    load = os.getloadavg()
    lines = [
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores ({cpu_flags()})",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- load average at start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)",
    ]
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    lines.append("- " + ", ".join(versions))
    return lines


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out
