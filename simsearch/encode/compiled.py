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

A BERT-family model compiles its unpadded forward instead (:mod:`simsearch.encode.unpadded`:
every Linear layer on the real tokens only, attention padded per batch), where it gives the same
hidden states; other models the padded copy above.

Measured (benchmarks/README.md, "Encoder throughput", session 11): 73% of the bf16 GEMM peak
per core on a build chunk of 2,048 texts (the peak now includes oneDNN's prepacked kernel, 10%
above ``torch.mm``'s), 1.11x the eager bf16 rate per core and 1.14-1.20x on two cores (eager
itself runs :mod:`simsearch.encode.attention`'s plain attention since session 10 and
:mod:`simsearch.encode.packed`'s Linear layers since session 11); vectors within bf16 rounding of
the eager bf16 ones.

Compiling takes ~21 s once per process (~16 s for the unpadded forward; a C++ compiler builds the kernels; a second process took
as long here, so no reuse across processes is counted on), so it is worth it only for large builds:
:func:`compile_after` texts in large calls before the switch, unless ``SIMSEARCH_COMPILE``
says ``1`` (at once, benchmarks) or ``0`` (never). Queries never pay it (they are small calls and
run eager, or through ONNX Runtime). Where compilation fails (no compiler, an unsupported model)
the encoder logs one line and stays eager: the rest of that call on the model as it was, its
later large calls with the eager path's plain attention and packed layers where they match.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, Callable

from simsearch import config
from simsearch.encode import unpadded
from simsearch.encode.attention import additive_mask, same_token_states
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


def padded_twin(model: Any) -> Any:
    """The copy of ``model`` that compiles: ordinary Linear layers (inductor prepacks them itself,
    fused with the rest) and transformers' "eager" attention (matmul + softmax: fusable, unlike
    SDPA's kernel). The eager model stays as it is, for small calls."""
    twin = plain_copy(model)
    if hasattr(twin, "set_attn_implementation"):
        twin.set_attn_implementation("eager")
    return twin


def compile_model(module: Any) -> Forward:
    """``module``'s compiled forward (keyword arguments), frozen. Compilation itself happens on
    the first call; :class:`Compiled` falls back on failure."""
    import torch

    from torch._inductor import config as inductor

    compiled: Forward = torch.compile(module, dynamic=True)

    def forward(**inputs: Any) -> Any:
        with inductor.patch(freezing=True):  # read when a graph compiles, i.e. inside a call
            return compiled(**inputs)

    return forward


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

    On its first batch it picks what to compile: the unpadded forward
    (:mod:`simsearch.encode.unpadded`) where the model has its layout and gives the same hidden
    states with it, else the padded twin (:func:`padded_twin`) with the additive mask where the
    model honours it. Dynamic shapes still specialise a batch of one row (a second compilation of
    tens of seconds), so such a batch is doubled and the copy dropped: the row's result is the same.
    """

    def __init__(self, model: Any) -> None:
        self._eager = model
        self._twin = padded_twin(model)
        self._forward: Forward | None = None  # compiled on the first batch
        self._failed = False
        self._unpadded = False  # whether the unpadded forward is the one compiled
        self._first = 0  # its first position index
        self._additive: bool | None = None  # the padded one: whether it takes the additive mask
        self._dtype = next(model.parameters()).dtype

    def __call__(self, **inputs: Any) -> tuple[Any, Any]:
        """The model's outputs and the attention mask they go with (doubled rows included)."""
        if not self._failed:
            doubled = inputs["input_ids"].shape[0] == 1
            feed = {k: v.repeat(2, 1) for k, v in inputs.items()} if doubled else inputs
            mask = feed["attention_mask"]
            try:
                if self._forward is None:
                    self._forward = self._choose(feed)
                return self._run(self._forward, feed), mask
            except Exception as exc:  # no C++ compiler, an operator inductor cannot take, ...
                log.warning(
                    "simsearch: torch.compile unavailable (%s); the bf16 encoder stays eager",
                    _first_line(exc),
                )
                self._failed = True
        return self._eager(**inputs), inputs["attention_mask"]

    def _choose(self, feed: dict[str, Any]) -> Forward:
        flat = unpadded.checked_twin(self._twin, feed)
        if flat is not None:
            self._unpadded, self._first = True, unpadded.first_position(self._twin)
            return compile_model(flat)
        self._additive = honours_additive_mask(self._eager, feed)
        return compile_model(self._twin)

    def _run(self, forward: Forward, feed: dict[str, Any]) -> Any:
        if self._unpadded:
            last, pooled = forward(**unpadded.flatten(feed, self._first, self._dtype))
            return SimpleNamespace(last_hidden_state=last, pooler_output=pooled)
        if self._additive:
            feed = dict(feed, attention_mask=additive_mask(feed["attention_mask"], self._dtype))
        return forward(**feed)

    @property
    def active(self) -> bool:
        """Whether the compiled forward is in use (False after a failed compilation)."""
        return not self._failed

    @property
    def unpadded(self) -> bool:
        """Whether the unpadded forward is the one compiled (decided on the first batch)."""
        return self._unpadded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
