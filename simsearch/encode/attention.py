"""A plain attention for bf16 builds that run eager (before :mod:`simsearch.encode.compiled`).

At a corpus sentence's ~23 tokens, torch's SDPA flash-attention kernel for the CPU is the eager
bf16 encoder's largest cost after the matrix products: 22% of the time for ~1% of the FLOPs
(2,048 corpus sentences, 1 thread, AMD EPYC Zen 5; 12 heads x 32 dims over ~25 tokens is far
below its blocking). Two batched products and a softmax over the short rows cost about half of
that (10.5% of the time after): interleaved, 519 -> 557 sentences/s a core and 833 -> 1,036 on
two cores (benchmarks/README.md, session 10), with the same distance to fp32 (mean cosine
0.99995; min 0.99984 against SDPA's 0.99982).

The arithmetic, outside autocast: ``q @ k^T`` in bf16, the additive mask added, the softmax of
the scaled scores in fp32, its probabilities back in bf16 for ``@ v``. It is registered with
transformers as :data:`NAME` (and the additive "eager" mask for it) and switched on per model only
where the model's hidden states with it match SDPA's (:func:`use_plain_attention`), so a model
whose attention takes other inputs (relative positions, ALiBi, ...) keeps its own.
"""

from __future__ import annotations

from typing import Any, Callable

#: The attention implementation's name in transformers' registry.
NAME = "simsearch_plain"
#: Least cosine between a token's hidden states with SDPA and with :data:`NAME`. bf16 rounding
#: alone keeps them above ~0.9988 (a 2-layer random BERT, the worst case seen; a trained model
#: stays above 0.9999); attending to padding, or leaving out an input the model's own attention
#: takes, moves them far more.
AGREE = 0.99
_registered = False


def plain_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **_: Any,
) -> tuple[Any, None]:
    """transformers' attention interface: ``query``/``key``/``value`` ``(batch, heads, tokens,
    head dim)``, an additive mask broadcastable to the scores; returns ``(batch, tokens, heads,
    head dim)`` and no weights."""
    import torch

    batch, heads, tokens, dim = query.shape
    keys = key.shape[2]
    scale = scaling if scaling is not None else dim**-0.5
    with torch.autocast(query.device.type, enabled=False):
        scores = torch.bmm(
            query.reshape(batch * heads, tokens, dim), key.reshape(batch * heads, keys, dim).transpose(1, 2)
        ).view(batch, heads, tokens, keys)
        if attention_mask is not None:
            scores = scores + attention_mask.to(scores.dtype)
        probs = torch.softmax(scores.float() * scale, dim=-1).to(value.dtype)
        out = torch.bmm(probs.view(batch * heads, tokens, keys), value.reshape(batch * heads, keys, dim))
    return out.view(batch, heads, tokens, dim).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make :data:`NAME` known to transformers (once per process)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, plain_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    _registered = True


def use_plain_attention(model: Any, inputs: dict[str, Any]) -> bool:
    """Switch ``model`` (in SDPA mode) to :data:`NAME` if its last hidden states on ``inputs``
    (a batch, padding included) stay within :data:`AGREE` of SDPA's; else leave it as it was."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(
        model, "set_attn_implementation"
    ):
        return False

    def switch() -> None:
        register()
        model.set_attn_implementation(NAME)

    # a model or transformers version that cannot take it raises: SDPA again
    return keep_if_same(model, inputs, switch, lambda: _restore(model), AGREE)


def keep_if_same(
    model: Any, inputs: dict[str, Any], switch: Callable[[], None], undo: Callable[[], None], least: float
) -> bool:
    """Apply ``switch`` (a change to ``model``) and keep it only where the model's last hidden
    states on ``inputs`` stay within ``least`` (:func:`same_token_states`) of what they were;
    where they do not, or anything raises, ``undo`` it. Returns whether the change was kept."""
    try:
        before = model(**inputs)[0]
        switch()
        after = model(**inputs)[0]
    except Exception:
        undo()
        return False
    if not same_token_states(before, after, inputs["attention_mask"], least):
        undo()
        return False
    return True


def same_token_states(first: Any, second: Any, mask: Any, least: float) -> bool:
    """Whether two ``(batch, tokens, hidden)`` outputs agree, token by token (cosine at least
    ``least``), on the tokens ``mask`` (0/1, ``(batch, tokens)``) keeps; padding is not compared."""
    import torch

    keep = mask.bool()
    a, b = first[keep].float(), second[keep].float()
    if a.shape != b.shape:
        return False
    return bool(torch.nn.functional.cosine_similarity(a, b, dim=-1).min() >= least)


def _restore(model: Any) -> None:
    try:
        model.set_attn_implementation("sdpa")
    except Exception:  # pragma: no cover - it was in SDPA mode a moment ago
        pass
