"""``python -m benchmarks --isa avx2``: the benchmarks with every library seeing an AVX2-only CPU.

No AVX2-only machine is at hand here, and the libraries choose their kernels at run time from
CPUID (torch's ATen and inductor, oneDNN, MKL, ONNX Runtime's MLAS, FAISS): environment switches
reach only some of them (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``FAISS_SIMD_LEVEL``;
MLAS has none). So the benchmark process is started again with ``cpuid_avx2.c`` preloaded: on a
Linux CPU with CPUID faulting (``cpuid_fault`` in /proc/cpuinfo) it answers every CPUID with the
AVX-512, AVX-VNNI and AMX bits cleared. The hardware is unchanged: the figures are this CPU's AVX2
code paths (its caches, clock and 256-bit units), which an AVX2-only CPU's may differ from; every
report says so (:func:`machine_line`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .stats import ISA_ENV, hardware_flag_set

SOURCE = Path(__file__).with_name("cpuid_avx2.c")
ENV = ISA_ENV
CHOICES = ("native", "avx2")


def restart_as_avx2(argv: list[str]) -> None:
    """Start ``python -m benchmarks argv`` again with the CPUID mask preloaded (does not return)."""
    flags = hardware_flag_set()
    if "avx512f" not in flags and "avx_vnni" not in flags:
        raise SystemExit("--isa avx2: this CPU has no AVX-512 or AVX-VNNI to hide; run without --isa")
    if "cpuid_fault" not in flags:
        raise SystemExit(
            "--isa avx2: this CPU (or its hypervisor) offers no CPUID faulting (no `cpuid_fault` in "
            "/proc/cpuinfo), so the libraries' CPU checks cannot be answered; run on an AVX2-only machine"
        )
    from .corpus import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    library = build(RESULTS)
    env = dict(os.environ, **{ENV: "avx2"})
    env["LD_PRELOAD"] = " ".join(p for p in (str(library), env.get("LD_PRELOAD", "")) if p)
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *argv], env)


def build(directory: Path) -> Path:
    """``cpuid_avx2.c`` compiled to ``directory/cpuid_avx2.so``."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("--isa avx2 needs a C compiler (cc or gcc, or $CC) to build benchmarks/cpuid_avx2.c")
    out = directory / "cpuid_avx2.so"
    done = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(out), str(SOURCE), "-ldl"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"--isa avx2: building {SOURCE.name} failed: {done.stderr.strip()[:300]}")
    return out


def check() -> None:
    """In the restarted process: stop unless torch now sees AVX2 (the mask took)."""
    if os.environ.get(ENV) != "avx2":
        return
    import torch

    seen = torch.backends.cpu.get_cpu_capability()
    if seen != "AVX2":
        raise SystemExit(f"--isa avx2: the CPUID mask did not take (torch sees {seen}); nothing measured")


def machine_line() -> str | None:
    """The report's line on the masked ISA, or None when nothing is masked."""
    if os.environ.get(ENV) != "avx2":
        return None
    return (
        "- ISA: **masked to AVX2** (`--isa avx2`): every CPUID this process and its children ask "
        "answers without AVX-512, AVX-VNNI or AMX (benchmarks/cpuid_avx2.c, Linux CPUID faulting), so "
        "torch, oneDNN, MKL, ONNX Runtime and FAISS run their AVX2 kernels; the hardware is the CPU "
        "above, not an AVX2-only one"
    )
