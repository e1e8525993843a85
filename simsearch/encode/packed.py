"""bf16 Linear layers on weights prepacked for oneDNN, for bf16 builds that run eager.

A bf16 ``nn.Linear`` on the CPU runs ``addmm`` on the weight as it is stored, and oneDNN reorders
that weight into its own blocked layout on every call. Reordered once, the same products run
5-7% faster (1 thread, AMD EPYC Zen 5, ``800 x 384 x 384/1536`` and ``800 x 1536 x 384``: 469-484
against 495-514 GFLOP/s) and give the same numbers (largest difference 0.0 from 1 to 2,000
rows): only the reorder is gone. On the whole eager encoder (2,048 corpus sentences, plain
attention, interleaved) that was 597 -> 627 sentences/s a core (6 rounds; 589-606 -> 622 in
another run) and 1,026 -> 1,056 on two cores, the vectors unchanged (least cosine 0.9999998;
benchmarks/README.md, session 11). The compiled path (:mod:`simsearch.encode.compiled`) gets
the same from inductor's freezing, so it compiles a copy with the ordinary layers
(:func:`plain_copy`).

:func:`use_packed_linears` swaps every bf16 ``nn.Linear`` of a model for a packed layer
(:func:`packed_linear_class`; the original kept inside it, weights shared) and keeps the swap
only where the model's hidden states come out as before. It costs one more copy of the Linear
weights (the packed one: ~22 MB for the default model, ~170 MB for bert-base); a model or torch
without oneDNN's operators keeps its layers.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from simsearch.encode.attention import keep_if_same
from simsearch.encode.precision import cpu_runs_bf16

#: Least cosine between a token's hidden states before and after the swap. The products are the
#: same to the bit (measured), so anything but rounding noise means the layer is not the model's.
SAME = 0.9999


def _packed_linear_class() -> type[torch.nn.Module]:
    import torch

    class _PackedLinear(torch.nn.Module):
        """``linear``'s output from its weight reordered once for oneDNN (bf16, CPU)."""

        def __init__(self, linear: Any) -> None:
            super().__init__()
            self.linear = linear  # the original, for copies and the compiled twin
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
            self.packed_bias = None if linear.bias is None else linear.bias.detach()

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16).contiguous()  # as autocast casts it
            out = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.packed_bias, "none", [], "")
            return out.reshape(*x.shape[:-1], out.shape[-1])

        # What model code may read of a Linear (its dtype, its shape) reads the original.
        @property
        def weight(self) -> Any:
            return self.linear.weight

        @property
        def bias(self) -> Any:
            return self.linear.bias

        @property
        def in_features(self) -> int:
            return int(self.linear.in_features)

        @property
        def out_features(self) -> int:
            return int(self.linear.out_features)

    return _PackedLinear


_CLASS: type[torch.nn.Module] | None = None


def packed_linear_class() -> type[torch.nn.Module]:
    """The :class:`torch.nn.Module` class of packed layers (made once per process)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _packed_linear_class()
    return _CLASS


def available() -> bool:
    """Whether this torch has oneDNN and the two operators (build options can leave them out),
    and this CPU runs oneDNN's bf16 kernels (:func:`~simsearch.encode.precision.cpu_runs_bf16`;
    elsewhere the reorder raises and bf16 Linears stay as they are)."""
    import torch

    mkldnn = torch.ops.mkldnn
    return (
        hasattr(mkldnn, "_reorder_linear_weight") and hasattr(mkldnn, "_linear_pointwise") and cpu_runs_bf16()
    )


def use_packed_linears(model: Any, inputs: dict[str, Any]) -> bool:
    """Swap ``model``'s bf16 Linear layers for packed ones if its last hidden states on
    ``inputs`` (a batch, padding included) stay the same (:data:`SAME`); else leave it as it was."""
    import torch

    if not available():
        return False
    targets = [
        (parent, name, child)
        for parent in list(model.modules())
        for name, child in list(parent.named_children())
        if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16
    ]
    if not targets:
        return False
    swapped: list[tuple[Any, str, Any]] = []

    def switch() -> None:
        cls = packed_linear_class()
        for parent, name, child in targets:
            layer = cls(child)
            setattr(parent, name, layer)
            swapped.append((parent, name, layer))

    # no oneDNN kernel for this CPU or shape, or a model that reads its weights itself, raises
    return keep_if_same(model, inputs, switch, lambda: _put_back(swapped), SAME)


def plain_copy(model: Any) -> Any:
    """A deep copy of ``model`` with ordinary Linear layers where it has packed ones."""
    cls = _CLASS
    swapped = []
    if cls is not None:
        swapped = [
            (parent, name, child)
            for parent in list(model.modules())
            for name, child in list(parent.named_children())
            if isinstance(child, cls)
        ]
    _put_back(swapped)
    try:
        return copy.deepcopy(model)
    finally:
        for parent, name, layer in swapped:
            setattr(parent, name, layer)


def _put_back(swapped: list[tuple[Any, str, Any]]) -> None:
    for parent, name, layer in swapped:
        setattr(parent, name, layer.linear)
