"""Numeric precision of the encoder's forward pass: fp32 (exact), bf16 or int8.

``fp32`` keeps the checkpoint as it is, so vectors equal sentence-transformers'. ``bf16`` casts the
weights to bfloat16 and runs under CPU autocast (matmuls in bf16, reductions such as softmax and
layer norm kept in fp32 by autocast), which uses the AVX-512 bf16 units where the CPU has them.
``int8`` applies torch's dynamic quantisation to every ``nn.Linear`` with per-output-channel
weight scales: weights stored as int8, activations quantised per batch at run time.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, ContextManager

from .errors import ModelError

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

        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore")
            return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                    dtype=torch.qint8)
    return model


def autocast(precision: str, device: str = "cpu") -> ContextManager[Any]:
    """The context the forward pass runs in: bf16 autocast for ``bf16``, nothing otherwise."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
