"""bf16 builds through ``torch.compile``: the non-GEMM work fused, the GEMMs on prepacked weights.

At a corpus sentence's ~23 tokens the bf16 encoder's matrix products already run near the CPU's
bf16 GEMM peak; what it loses is elsewhere. Profiled on 600 corpus sentences, 1 thread, AMD EPYC
(AVX-512 bf16): ``addmm`` 64% of the time, torch's SDPA flash-attention kernel 21% (for ~1% of
the FLOPs: 12 heads x 32 dims over ~25 tokens is far too small for its blocking), GELU, layer
norm, copies and adds the rest. Compiled with inductor on a copy of the model that uses the
plain ``matmul -> softmax -> matmul`` attention:

- **frozen** (inductor's ``freezing``, set while the compiled forward runs, because it is read
  when a graph is compiled, which is at a call; ``torch.compile(options={"freezing": True})``
  does not reach that check in torch 2.13): the weights become constants, prepacked for oneDNN,
  and bias and GELU run inside the GEMMs (``mkldnn._linear_pointwise``);
- with an **additive attention mask** of shape ``(batch, 1, 1, tokens)`` made once per batch:
  transformers passes a 4-D mask through as it is, so each layer's softmax adds a broadcast row
  instead of rebuilding the mask from the 0/1 one (the rebuilt mask made the fused softmax 2.3x
  slower: 114 ms against 50 ms of 900 in a profile). Whether the model honours it is checked once
  in eager mode (the 0/1 mask and the additive one must give the same hidden states); a model
  that does not gets the 0/1 mask.

Measured (benchmarks/README.md, "Encoder throughput", session 11): 73% of the bf16 GEMM peak
per core on a build chunk of 2,048 texts (the peak now includes oneDNN's prepacked kernel, 10%
above ``torch.mm``'s), 1.11x the eager bf16 rate per core and 1.14-1.20x on two cores (eager
itself runs :mod:`simsearch.encode.attention`'s plain attention since session 10 and
:mod:`simsearch.encode.packed`'s Linear layers since session 11); vectors within bf16 rounding of
the eager bf16 ones.

Compiling takes ~21 s once per process (a C++ compiler builds the kernels; a second process took
as long here, so no reuse across processes is counted on), so it is worth it only for large builds:
:func:`compile_after` texts in large calls before the switch, unless ``SIMSEARCH_COMPILE``
says ``1`` (at once, benchmarks) or ``0`` (never). Queries never pay it (they are small calls and
run eager, or through ONNX Runtime). Where compilation fails (no compiler, an unsupported model)
the encoder logs one line and stays eager: the rest of that call on the model as it was, its
later large calls with the eager path's plain attention and packed layers where they match.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from simsearch import config
from simsearch.encode.attention import same_token_states
from simsearch.encode.packed import plain_copy

log = logging.getLogger("simsearch")

#: Texts a bf16 encoder encodes in large calls, per torch thread, before it compiles (auto
#: mode). Compiling took ~21 s here on one thread and on two (no kernels cached; they are not
#: reused across processes with freezing on). Since eager bf16 runs packed Linear layers
#: (:mod:`simsearch.encode.packed`, session 11), compiling saves 0.16-0.19 ms a text on one
#: thread (eager 615-632 against compiled 697-701 sentences/s, two interleaved runs), so
#: 112-137k further texts repay it; on two threads 0.11-0.16 ms (1,032-1,141 against
#: 1,240-1,306/s), 131-193k texts. 100,000 a thread lies within 1.3x of both. A build that has
#: already made this many texts is taken to go on at least as long again.
COMPILE_AFTER_TEXTS_PER_THREAD = 100_000

Forward = Callable[..., Any]


def wanted(precision: str, device: str, texts_so_far: int, choice: bool | None = None) -> bool:
    """Whether a ``precision`` encoder on ``device`` that has encoded ``texts_so_far`` texts in
    large calls should run compiled from now on; ``choice`` (the encoder's ``compile``) overrides
    ``SIMSEARCH_COMPILE`` when not None."""
    mode = config.encoder_compile() if choice is None else ("1" if choice else "0")
    if precision != "bf16" or device != "cpu" or mode == "0":
        return False
    return mode == "1" or texts_so_far >= compile_after()


def compile_after() -> int:
    """Texts in large calls after which an auto-mode bf16 encoder compiles, at this process's
    torch threads."""
    import torch

    return COMPILE_AFTER_TEXTS_PER_THREAD * max(1, torch.get_num_threads())


def compile_model(model: Any) -> Forward:
    """A compiled forward of a copy of ``model`` (the eager model stays as it is, for small calls).

    Compilation itself happens on the first call; :class:`Compiled` falls back on failure.
    """
    import torch

    from torch._inductor import config as inductor

    twin = plain_copy(model)  # inductor prepacks nn.Linear weights itself, fused with the rest
    if hasattr(twin, "set_attn_implementation"):
        twin.set_attn_implementation("eager")  # matmul + softmax: fusable, unlike SDPA's kernel
    compiled: Forward = torch.compile(twin, dynamic=True)

    def forward(**inputs: Any) -> Any:
        with inductor.patch(freezing=True):  # read when a graph compiles, i.e. inside a call
            return compiled(**inputs)

    return forward


def additive_mask(mask: Any, dtype: Any) -> Any:
    """The 0/1 ``(batch, tokens)`` mask as the additive ``(batch, 1, 1, tokens)`` one that
    attention adds to its scores: 0 where a token counts, the dtype's lowest value where not."""
    import torch

    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def honours_additive_mask(model: Any, inputs: dict[str, Any]) -> bool:
    """Whether ``model`` (eager) gives the same hidden states for a 0/1 mask and its additive
    form, on the first row of ``inputs`` twice, the second time with its second half masked."""
    row = {k: v[:1].repeat(2, 1) for k, v in inputs.items()}
    mask = row["attention_mask"].clone()
    tokens = int(mask[0].sum())
    if tokens < 2:
        return False  # nothing to mask without masking the whole row
    mask[1, (tokens + 1) // 2 :] = 0
    row["attention_mask"] = mask
    dtype = next(model.parameters()).dtype
    try:
        plain = model(**row)[0]
        added = model(**dict(row, attention_mask=additive_mask(mask, dtype)))[0]
    except Exception:  # a model that takes no 4-D mask
        return False
    return same_token_states(plain, added, mask, 0.999)  # the same arithmetic: rounding only


class Compiled:
    """The compiled forward with its eager fallback; batches of one row run as two.

    Dynamic shapes still specialise a batch of one row (a second compilation of tens of
    seconds), so such a batch is doubled and the copy dropped: the row's result is the same.
    """

    def __init__(self, model: Any) -> None:
        self._eager = model
        self._forward: Forward | None = compile_model(model)
        self._additive: bool | None = None  # decided on the first batch
        self._dtype = next(model.parameters()).dtype

    def __call__(self, **inputs: Any) -> tuple[Any, Any]:
        """The model's outputs and the attention mask they go with (doubled rows included)."""
        if self._forward is not None:
            doubled = inputs["input_ids"].shape[0] == 1
            feed = {k: v.repeat(2, 1) for k, v in inputs.items()} if doubled else inputs
            mask = feed["attention_mask"]
            if self._additive is None:
                self._additive = honours_additive_mask(self._eager, feed)
            if self._additive:
                feed = dict(feed, attention_mask=additive_mask(mask, self._dtype))
            try:
                return self._forward(**feed), mask
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
