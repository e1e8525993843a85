"""What an encoder row may claim: its GEMM FLOPs per sentence and this CPU's measured GEMM peak.

A transformer encoder spends nearly all its arithmetic in matrix products, so a sentence's cost
is countable from the model's shapes and its token count, and a rate in sentences/s turns into
GFLOP/s. Set beside the GEMM peak measured in the same process, at the same precision and
thread count, it gives the share of the machine's ceiling the encoder reaches. A share above
100% means the benchmark is wrong (the rate, the token count or the peak), and
:func:`check_share` raises rather than print it.

Counted per layer, for a sequence of ``L`` tokens, hidden size ``h``, intermediate size ``i``
(a multiply-add is 2 FLOP): the Q, K, V and output projections ``2 * L * 4h^2``, the two
feed-forward products ``2 * L * 2hi``, and the attention products ``QK^T`` and ``AV``
``2 * 2 * L^2 * h``. Embeddings are look-ups, pooling and layer norms are not GEMMs: not counted.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

GEMM_SIZE = 2048
#: Flags that decide which GEMM kernels this CPU can run, printed on every table.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class Shapes:
    """The GEMM-relevant shapes of a BERT-style encoder."""

    layers: int
    hidden: int
    intermediate: int

    @classmethod
    def of(cls, config: Any) -> Shapes:
        """From a transformers config (BERT, RoBERTa, MiniLM, ... field names)."""
        return cls(int(config.num_hidden_layers), int(config.hidden_size), int(config.intermediate_size))

    def flops(self, tokens: int) -> float:
        """GEMM FLOPs of one sequence of ``tokens`` tokens through every layer."""
        h, i, n = self.hidden, self.intermediate, tokens
        return self.layers * (2.0 * n * (4 * h * h + 2 * h * i) + 4.0 * n * n * h)


def gflop_per_sentence(shapes: Shapes, lengths: Sequence[int]) -> float:
    """Mean GEMM GFLOP a sentence needs at its own (unpadded) token count: the useful work."""
    return sum(shapes.flops(n) for n in lengths) / len(lengths) / 1e9


def padded_gflop_per_sentence(shapes: Shapes, lengths: Sequence[int], batch_size: int) -> float:
    """Mean GEMM GFLOP a sentence costs as simsearch batches it (:mod:`simsearch.encode.batching`:
    sorted by length, each batch padded to its longest member): what the encoder multiplies."""
    from simsearch.encode.batching import length_batches

    total = 0.0
    for batch in length_batches(lengths, batch_size):
        total += len(batch) * shapes.flops(max(lengths[i] for i in batch))
    return total / len(lengths) / 1e9


def cpu_flags() -> list[str]:
    """The :data:`FLAGS` this process sees (:func:`benchmarks.stats.cpu_flag_set`; empty off Linux)."""
    from .stats import cpu_flag_set

    present = cpu_flag_set()
    return [flag for flag in FLAGS if flag in present]


def machine_line(threads: int) -> str:
    """One line naming the CPU, its GEMM flags and the load now, for the top of a table."""
    from .stats import cpu_name

    flags = cpu_flags()
    missing = [flag for flag in FLAGS if flag not in flags]
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"CPU {cpu_name()}, has {', '.join(flags) or 'none of the listed flags'}; "
        f"lacks {', '.join(missing) or 'none'}; {threads} thread(s); load average {load} (1/5/15 min)"
    )


def clock_for(threads: int) -> Callable[[], float]:
    """CPU time of the process on one thread, wall time on more.

    On a machine shared with other jobs a one-thread run also waits for a core, which wall time
    counts and CPU time does not; with several threads CPU time would add their spinning.
    """
    return time.process_time if threads == 1 else time.perf_counter


def timed(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def _best(fn: Callable[[], object], clock: Callable[[], float], repeats: int = 3) -> float:
    fn()
    return min(timed(fn, clock) for _ in range(repeats))


class GemmPeaks:
    """2048^3 GEMMs per precision, each through every library an encoder here runs on.

    The peak of a precision is the fastest of its kernels, so no encoder can be credited with a
    share of a slow library's peak: fp32 is torch (MKL) and ONNX Runtime (MLAS; on AMD CPUs MKL
    takes its AVX2 path, about half MLAS's AVX-512 rate); bf16 is torch's ``mm`` and oneDNN's
    inner product on a weight reordered once (``mkldnn._linear_pointwise``, what the compiled
    and the eager bf16 encoders run: 489 against 461 GFLOP/s for ``mm``, 1 thread, AMD EPYC
    Zen 5); int8 is
    torch's dynamic-quantised Linear (fbgemm, activations quantised per call, as the encoders do)
    and ONNX Runtime's dynamically quantised MatMul. :meth:`measure` is meant to be called once
    per benchmark round, between the encoder runs, so peaks and rates see the same load.
    """

    def __init__(self, threads: int, size: int = GEMM_SIZE) -> None:
        import torch

        from simsearch.encode.precision import cpu_runs_bf16

        self.size = size
        self.threads = threads
        self.clock = clock_for(threads)
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator)
        b = torch.randn(size, size, generator=generator)
        a16, b16 = a.bfloat16(), b.bfloat16()
        self._kernels: dict[str, dict[str, Callable[[], object]]] = {
            "fp32": {"torch": partial(torch.mm, a, b)},
            # Without bf16 kernels (AVX2-only) torch's bf16 mm runs ~0.3 GFLOP/s and the bf16
            # encoder runs the fp32 export: its peak is then fp32's (:meth:`peak`).
            "bf16": {"torch": partial(torch.mm, a16, b16), **_onednn_bf16(a16, b16)}
            if cpu_runs_bf16()
            else {},
            "int8": {"torch": _torch_int8(a, b)},
        }
        onnx = _onnx_kernels(a.numpy(), b.numpy(), threads)
        for precision, kernel in onnx.items():
            self._kernels[precision]["onnxruntime"] = kernel
        self.rounds: list[dict[str, dict[str, float]]] = []

    def measure(self) -> dict[str, dict[str, float]]:
        """GFLOP/s of every kernel now; appended to :attr:`rounds`."""
        flops = 2.0 * self.size**3
        result = {
            precision: {lib: flops / _best(fn, self.clock) / 1e9 for lib, fn in kernels.items()}
            for precision, kernels in self._kernels.items()
        }
        self.rounds.append(result)
        return result

    def peak(self, precision: str, round_: int | None = None) -> float:
        """Fastest kernel's GFLOP/s in one round, or over all rounds (``None``)."""
        rounds = self.rounds if round_ is None else [self.rounds[round_]]
        if not self._kernels[precision]:  # bf16 on a CPU without bf16 kernels runs fp32's
            precision = "fp32"
        return max(max(r[precision].values()) for r in rounds)

    def lines(self) -> list[str]:
        """A markdown table: median (min-max) GFLOP/s of every kernel over the rounds."""
        from .stats import summary, table

        rows = []
        for precision, kernels in self._kernels.items():
            for lib in kernels:
                values = [r[precision][lib] for r in self.rounds]
                rows.append([precision, lib, summary(values, digits=0)])
            if not kernels:
                rows.append([precision, "none: this CPU has no bf16 kernels; the encoder runs fp32's", "-"])
        return table([f"{self.size}^3 GEMM", "library", "GFLOP/s"], rows)


def _onednn_bf16(a: Any, b: Any) -> dict[str, Callable[[], object]]:
    """oneDNN's bf16 inner product ``a @ b`` on ``b`` reordered once, or nothing without it."""
    import torch

    from simsearch.encode import packed

    if not packed.available():
        return {}
    weight = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous())  # Linear: (out, in)
    return {"oneDNN prepacked": partial(torch.ops.mkldnn._linear_pointwise, a, weight, None, "none", [], "")}


def _torch_int8(a: Any, b: Any) -> Callable[[], object]:
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = torch.nn.Linear(b.shape[0], b.shape[1], bias=False)
    with torch.no_grad():
        linear.weight.copy_(b.t())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(
            torch.nn.Sequential(linear), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    packed = quantized[0]._packed_params._packed_params
    # reduce_range=False: the full 8-bit activations simsearch's int8 encoder uses on VNNI CPUs.
    return lambda: torch.ops.quantized.linear_dynamic(a, packed, reduce_range=False)


def _onnx_kernels(a: np.ndarray, b: np.ndarray, threads: int) -> dict[str, Callable[[], object]]:
    """ONNX Runtime MatMul (fp32) and its dynamic int8 quantisation, or nothing without it."""
    try:
        import onnx
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return {}
    import logging
    import tempfile

    n = b.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, b.shape[1]])],
        [numpy_helper.from_array(b, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    kernels: dict[str, Callable[[], object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain, quantized = Path(tmp) / "gemm.onnx", Path(tmp) / "gemm-int8.onnx"
        onnx.save(model, str(plain))
        disabled = logging.root.manager.disable
        logging.disable(logging.WARNING)  # "consider pre-processing" advice
        try:
            quantize_dynamic(
                plain, quantized, per_channel=True, reduce_range=False, weight_type=QuantType.QInt8
            )
        finally:
            logging.disable(disabled)
        for precision, path in (("fp32", plain), ("int8", quantized)):
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            kernels[precision] = partial(session.run, None, {"x": a})
    return kernels


def check_share(name: str, share: float) -> None:
    """Raise when a row claims more than this CPU's measured GEMM peak: the benchmark is wrong."""
    if share > 1.0:
        raise RuntimeError(
            f"{name}: {share:.0%} of this CPU's measured GEMM peak at its precision, which no encoder "
            "can reach; the rate, the token count or the peak measurement is wrong"
        )
