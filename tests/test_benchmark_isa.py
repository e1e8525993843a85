"""benchmarks/isa.py and cpuid_avx2.c: ``python -m benchmarks --isa avx2`` on an AVX-512 CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import isa
from benchmarks.stats import hardware_flag_set

ROOT = Path(__file__).resolve().parents[1]
FLAGS = hardware_flag_set()
needs_mask = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc"))
    or "cpuid_fault" not in FLAGS
    or not ({"avx512f", "avx_vnni"} & FLAGS),
    reason="needs a C compiler and an x86-64 Linux CPU with AVX-512 or AVX-VNNI to hide and CPUID "
    "faulting (`cpuid_fault` in /proc/cpuinfo)",
)


@pytest.fixture(scope="module")
def mask(tmp_path_factory) -> Path:
    return isa.build(tmp_path_factory.mktemp("isa"))


def _python(code: str, preload: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    return subprocess.run(
        [sys.executable, *args, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )


WHAT_LIBRARIES_SEE = """
import faiss, torch
from simsearch.encode import packed, precision
print(torch.backends.cpu.get_cpu_capability())
print(faiss.get_compile_options().split()[-1])
print(torch.cpu._is_avx512_supported(), torch.cpu._is_avx512_bf16_supported(), torch.cpu._is_vnni_supported())
print(precision.cpu_runs_bf16(), packed.available(), precision._has_vnni())
"""


@needs_mask
def test_under_the_mask_every_library_sees_an_avx2_cpu(mask: Path) -> None:
    native = _python(WHAT_LIBRARIES_SEE, None)
    masked = _python(WHAT_LIBRARIES_SEE, mask)
    assert native.returncode == 0 and masked.returncode == 0, native.stderr + masked.stderr
    assert native.stdout.split("\n")[0] != "AVX2"  # this CPU has more, unmasked
    capability, faiss_level, torch_flags, simsearch_flags = masked.stdout.strip().split("\n")
    assert capability == "AVX2" and faiss_level == "AVX2"
    assert torch_flags == "False False False"
    assert simsearch_flags == "False False False"  # no bf16 kernels, no packing, 7-bit int8


@needs_mask
def test_a_real_segfault_still_kills_the_process(mask: Path) -> None:
    done = _python("import ctypes; ctypes.string_at(0)", mask)
    assert done.returncode == -11


@needs_mask
def test_a_segfault_handler_the_program_sets_still_runs(mask: Path) -> None:
    """Python's faulthandler (and gcc's crash reporter) install their own SIGSEGV handler: the
    mask keeps answering CPUID and hands them every other fault."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability()); import ctypes; ctypes.string_at(0)"
    done = _python(code, mask, "-X", "faulthandler")
    assert done.stdout.strip() == "AVX2"
    assert "Fatal Python error: Segmentation fault" in done.stderr and done.returncode != 0


@needs_mask
def test_a_compiler_started_under_the_mask_works(mask: Path, tmp_path: Path) -> None:
    """torch.compile runs gcc, which asks CPUID for -march=native and sets a SIGSEGV handler:
    before the mask kept its own handler in place, gcc died with an internal compiler error."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler is not None
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n", encoding="utf-8")
    env = dict(os.environ, LD_PRELOAD=str(mask))
    done = subprocess.run(
        [compiler, "-march=native", "-O2", str(source), "-o", str(tmp_path / "main")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    native = subprocess.run(
        [compiler, "-march=native", "-Q", "--help=target"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    enabled = {line.split()[0] for line in native.stdout.splitlines() if "[enabled]" in line}
    assert "-mavx2" in enabled and "-mavx512f" not in enabled  # gcc too sees no AVX-512


@needs_mask
def test_the_report_names_the_masked_isa(tmp_path: Path) -> None:
    """The command restarts itself under the mask and says so in the report's machine lines."""
    out = tmp_path / "report.md"
    env = dict(os.environ)
    env.pop(isa.ENV, None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--isa", "avx2", "--sections", "", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = out.read_text(encoding="utf-8")
    assert "masked to AVX2" in report and "not an AVX2-only one" in report
    cpu = next(line for line in report.splitlines() if line.startswith("- CPU:"))
    assert "avx2" in cpu and "avx512" not in cpu and "vnni" not in cpu  # the flags the libraries saw


def test_masked_flags_are_the_ones_cpuid_hides(monkeypatch) -> None:
    from benchmarks import stats

    hardware = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_int8", "cpuid_fault"}
    monkeypatch.delenv(isa.ENV, raising=False)
    assert stats.visible_flags(hardware) == hardware
    monkeypatch.setenv(isa.ENV, "avx2")
    assert stats.visible_flags(hardware) == {"avx2", "fma", "cpuid_fault"}


def test_without_cpuid_faulting_or_anything_to_hide_it_refuses(monkeypatch) -> None:
    monkeypatch.setattr(isa, "hardware_flag_set", lambda: {"avx2", "fma"})
    with pytest.raises(SystemExit, match="no AVX-512 or AVX-VNNI to hide"):
        isa.restart_as_avx2([])
    monkeypatch.setattr(isa, "hardware_flag_set", lambda: {"avx2", "avx512f"})
    with pytest.raises(SystemExit, match="no CPUID faulting"):
        isa.restart_as_avx2([])


def test_a_mask_that_did_not_take_stops_the_run(monkeypatch) -> None:
    import torch

    monkeypatch.delenv(isa.ENV, raising=False)
    isa.check()  # not asked for: nothing checked
    assert isa.machine_line() is None
    monkeypatch.setenv(isa.ENV, "avx2")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    with pytest.raises(SystemExit, match="did not take"):
        isa.check()
    assert "masked to AVX2" in (isa.machine_line() or "")


def test_no_compiler_is_a_clear_stop(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="needs a C compiler"):
        isa.build(tmp_path)
