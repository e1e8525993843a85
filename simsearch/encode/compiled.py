"""bf16 builds through ``torch.compile``: the non-GEMM work fused, the GEMMs on prepacked weights.

At a corpus sentence's ~23 tokens the bf16 encoder's matrix products already run near the CPU's
bf16 GEMM peak; what it loses is elsewhere. Profiled on 600 corpus sentences, 1 thread, AMD EPYC
(AVX-512 bf16): ``addmm`` 64% of the time, torch's SDPA flash-attention kernel 21% (for ~1% of
the FLOPs: 12 heads x 32 dims over ~25 tokens is far too small for its blocking), GELU, layer
norm, copies and adds the rest. Compiled with inductor on a copy of the model that uses the
plain ``matmul -> softmax -> matmul`` attention, with ``freezing`` (weights folded and prepacked
for oneDNN), the attention becomes two small batched products and a fused masked softmax, and
bias, GELU and residual adds ride on the GEMMs: 1.17x the eager rate in the locked encoder table
(1.16-1.32x in unlocked rounds; benchmarks/README.md, "Encoder throughput"); vectors stay within
bf16 rounding of the eager bf16 ones.

Compiling takes tens of seconds once per process (a C++ compiler builds the kernels; inductor
caches them on disk for later processes), so it is worth it only for large builds:
:data:`COMPILE_AFTER_TEXTS` texts in large calls before the switch, unless
``SIMSEARCH_COMPILE`` says ``1`` (at once, benchmarks) or ``0`` (never). Queries never pay it
(they are small calls and run eager, or through ONNX Runtime). Where compilation fails (no
compiler, an unsupported model) the encoder logs one line and stays eager.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

from simsearch import config

log = logging.getLogger("simsearch")

#: Texts a bf16 encoder encodes in large calls before it compiles (auto mode). Compiling costs
#: 27-100 s here; at ~500 sentences/s a core eager, the measured 1.17x (locked; 1.16-1.32x
#: unlocked) saves 0.29-0.48 ms a text, so ~60-140k further texts repay 40 s of compiling. A build
#: that has already made 100,000 is likely to go on long enough; a smaller one never pays.
COMPILE_AFTER_TEXTS = 100_000

Forward = Callable[..., Any]


def wanted(precision: str, device: str, texts_so_far: int, choice: bool | None = None) -> bool:
    """Whether a ``precision`` encoder on ``device`` that has encoded ``texts_so_far`` texts in
    large calls should run compiled from now on; ``choice`` (the encoder's ``compile``) overrides
    ``SIMSEARCH_COMPILE`` when not None."""
    mode = config.encoder_compile() if choice is None else ("1" if choice else "0")
    if precision != "bf16" or device != "cpu" or mode == "0":
        return False
    return mode == "1" or texts_so_far >= COMPILE_AFTER_TEXTS


def compile_model(model: Any) -> Forward:
    """A compiled forward of a copy of ``model`` (the eager model stays as it is, for small calls).

    Compilation itself happens on the first call; :class:`Compiled` falls back on failure.
    """
    import torch

    twin = copy.deepcopy(model)
    if hasattr(twin, "set_attn_implementation"):
        twin.set_attn_implementation("eager")  # matmul + softmax: fusable, unlike SDPA's kernel
    return torch.compile(twin, dynamic=True, options={"freezing": True})


class Compiled:
    """The compiled forward with its eager fallback; batches of one row run as two.

    Dynamic shapes still specialise a batch of one row (a second compilation of tens of
    seconds), so such a batch is doubled and the copy dropped: the row's result is the same.
    """

    def __init__(self, model: Any) -> None:
        self._eager = model
        self._forward: Forward | None = compile_model(model)

    def __call__(self, **inputs: Any) -> tuple[Any, Any]:
        """The model's outputs and the attention mask they go with (doubled rows included)."""
        if self._forward is not None:
            doubled = inputs["input_ids"].shape[0] == 1
            feed = {k: v.repeat(2, 1) for k, v in inputs.items()} if doubled else inputs
            try:
                return self._forward(**feed), feed["attention_mask"]
            except Exception as exc:  # no C++ compiler, an operator inductor cannot take, ...
                log.warning(
                    "simsearch: torch.compile unavailable (%s); the bf16 encoder stays eager",
                    _first_line(exc),
                )
                self._forward = None
        return self._eager(**inputs), inputs["attention_mask"]

    @property
    def active(self) -> bool:
        """Whether the compiled forward is in use (False after a failed compilation)."""
        return self._forward is not None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
