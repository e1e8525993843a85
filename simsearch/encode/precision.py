"""Numeric precision of the encoder's forward pass: fp32 (exact), bf16 or int8.

``fp32`` keeps the checkpoint as it is, so vectors equal sentence-transformers'. ``bf16`` casts the
weights to bfloat16 and runs under CPU autocast (matmuls in bf16, reductions such as softmax and
layer norm kept in fp32 by autocast), which uses the AVX-512 bf16 units where the CPU has them.
``int8`` applies torch's dynamic quantisation to every ``nn.Linear`` with per-output-channel
weight scales: weights stored as int8, activations quantised per batch at run time.

These are the torch forward passes, which small calls (queries without an ONNX export) run.
Large calls (builds) of fp32 and int8 go through ONNX Runtime's checked exports, and large bf16
builds through a compiled model: see :mod:`simsearch.encode.torch_encoder`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, ContextManager

from simsearch.errors import ModelError

PRECISIONS = ("fp32", "bf16", "int8")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def apply_precision(model: Any, precision: str, device: str = "cpu") -> Any:
    """The model converted for ``precision`` (in place where torch allows; returns the result)."""
    import torch

    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        if device != "cpu":
            raise ModelError("--precision int8 runs on the CPU only; use --device cpu or bf16")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        mapping = {torch.nn.Linear: _full_range_linear()} if _has_vnni() else None
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore")
            return quantize_dynamic(
                model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, mapping=mapping
            )
    return model


def _has_vnni() -> bool:
    """Whether fbgemm's int8 kernels here are VNNI ones (AVX-512 VNNI or AMX): their dot products
    accumulate in 32 bits, so 8-bit activations cannot saturate. Asked of CPUID through torch
    (what fbgemm itself asks); /proc/cpuinfo where this torch cannot say. AVX-VNNI (the 256-bit
    form) does not count: fbgemm has no kernels for it."""
    import torch

    try:
        return bool(torch.cpu._is_vnni_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "amx_int8"))


def cpu_runs_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices at speed: oneDNN's bf16 kernels need AVX-512
    (BW, VL, DQ), AVX-NE-CONVERT or AMX. Without them (an AVX2-only CPU) torch's bf16 products take
    a generic path: 22 GFLOP/s for a bf16 Linear against 94 in fp32 (1 thread, an AMD EPYC Zen 5
    with CPUID masked to AVX2, ``python -m benchmarks --isa avx2``)."""
    import torch

    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if supported is None or not torch.backends.mkldnn.is_available():
        return False
    return bool(supported())


def _full_range_linear() -> type:
    """Dynamic int8 Linear quantising activations to the full 8 bits.

    torch's dynamic Linear always passes ``reduce_range=True`` (7-bit activations), which guards
    against 16-bit saturation on AVX2 but costs accuracy: on all-MiniLM-L6-v2 the mean cosine to
    fp32 goes from 0.970 (min 0.90) to 0.992 (min 0.97) with the full range. Used only where the
    CPU has VNNI.
    """
    import torch
    from torch.ao.nn.quantized.dynamic import Linear

    class FullRangeLinear(Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self._packed_params.dtype != torch.qint8:
                return super().forward(x)
            return torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=False
            ).to(x.dtype)

    return FullRangeLinear


def autocast(precision: str, device: str = "cpu") -> ContextManager[Any]:
    """The context the forward pass runs in: bf16 autocast for ``bf16``, nothing otherwise."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
