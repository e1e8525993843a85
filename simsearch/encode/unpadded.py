"""Compiled bf16 builds on the real tokens only: no matrix product multiplies padding.

A batch of 32 length-sorted corpus sentences still pads each to the longest (+2.8% of the tokens
on 2,048 corpus sentences), and every Linear layer multiplies those padded rows too. Here a
BERT-family encoder runs on the batch's tokens laid end to end, ``(tokens, hidden)``: embeddings,
the six Linear layers of each layer, layer norms and GELU take real tokens only. Only attention,
which mixes the tokens of one text, sees each text padded to the batch's width again: Q, K and V
are gathered into ``(batch, heads, width, head dim)``, padded keys masked out, and the result
scattered back to the real tokens. At the end the last hidden states are laid out padded once
more, so the pooling functions, and the pooler, see what the model itself returns.

The arithmetic is the model's own (transformers' "eager" attention: scores scaled, the additive
mask added, softmax in fp32, probabilities in bf16 for ``@ v``); each row's products are the same
products. Whether a model has this layout, and gives the same hidden states with it, is checked
once, in eager mode, against its padded twin (:func:`checked_twin`); a model that does not keeps
the padded compiled path (:mod:`simsearch.encode.compiled`).

Measured (AMD EPYC Zen 5 with AVX-512 bf16; benchmarks/README.md, session 15): level with the
padded compiled forward in steady state within that machine's noise (interleaved in one process,
10 rounds: 1.010x a core, 1.016x on two; in separate processes 2-3% slower on two), and it
compiles in ~16 instead of ~20 s (30,000 texts with compiling forced: 39-40 against 43 s; whole
``simsearch build`` runs of the same 30,000 were level, not explained).
The vectors are the padded path's to within rounding (least cosine 0.9999998; STS-B unchanged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from simsearch.encode.attention import additive_mask, same_token_states

#: Least cosine between a token's hidden states laid end to end and padded (eager): the same
#: products on other rows, so rounding only. all-MiniLM-L6-v2 in bf16 on a batch of the corpus's
#: longest sentences: 0.99986 at the least (bf16's own distance to fp32 there: 0.99981); the same
#: with positions numbered from the wrong index: 0.85.
SAME = 0.999
#: Model types whose embeddings are BERT's (word + absolute position + token type, then a layer
#: norm), with the first position's index: RoBERTa's family numbers positions after its padding
#: index (``padding_idx + 1``).
_FIRST_POSITION = {"bert": 0, "roberta": 2, "xlm-roberta": 2, "camembert": 2}


def _unpadded_class() -> type[torch.nn.Module]:
    import torch

    class UnpaddedBert(torch.nn.Module):
        """A BERT-family model's forward pass on ``(tokens, hidden)``; shares the model's layers."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.embeddings = model.embeddings
            self.layers = model.encoder.layer
            self.pooler = getattr(model, "pooler", None)
            config = model.config
            self.heads = int(config.num_attention_heads)
            self.head_dim = int(config.hidden_size) // self.heads

        def forward(
            self, ids: Any, positions: Any, types: Any, gather: Any, scatter: Any, mask: Any
        ) -> tuple[Any, Any]:
            """``ids``/``positions``/``types``: ``(tokens,)``; ``gather``: ``(batch, width)`` each
            padded slot's token (any real one where it is padding); ``scatter``: ``(tokens,)``
            each token's padded slot in ``batch * width``; ``mask``: additive ``(batch, 1, 1,
            width)``. Returns the padded last hidden states and the pooler's output (or None)."""
            emb = self.embeddings
            h = (
                emb.word_embeddings(ids)
                + emb.token_type_embeddings(types)
                + emb.position_embeddings(positions)
            )
            h = emb.LayerNorm(h)
            batch, width = gather.shape
            heads, dim = self.heads, self.head_dim
            scale = dim**-0.5

            def padded(x: Any) -> Any:  # (tokens, hidden) -> (batch * heads, width, head dim)
                return (
                    x[gather]
                    .view(batch, width, heads, dim)
                    .transpose(1, 2)
                    .reshape(batch * heads, width, dim)
                )

            for layer in self.layers:
                own = layer.attention.self
                q, k, v = padded(own.query(h)), padded(own.key(h)), padded(own.value(h))
                with torch.autocast(q.device.type, enabled=False):
                    scores = torch.bmm(q, k.transpose(1, 2)).view(batch, heads, width, width) * scale + mask
                    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
                    attended = torch.bmm(probs.view(batch * heads, width, width), v)
                attended = attended.view(batch, heads, width, dim).transpose(1, 2).reshape(batch * width, -1)
                out = layer.attention.output
                h = out.LayerNorm(out.dense(attended[scatter]) + h)
                middle = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(h))
                h = layer.output.LayerNorm(layer.output.dense(middle) + h)
            last = h[gather]
            return last, None if self.pooler is None else self.pooler(last)

    return UnpaddedBert


_CLASS: type[torch.nn.Module] | None = None


def unpadded_class() -> type[torch.nn.Module]:
    """The :class:`torch.nn.Module` class of unpadded forwards (made once per process)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _unpadded_class()
    return _CLASS


def has_layout(model: Any) -> bool:
    """Whether ``model`` is laid out as a BERT-family encoder this module can run: BERT's
    embeddings with absolute positions, and layers of self-attention (query/key/value), its output
    (dense + layer norm), and the feed-forward block (intermediate + output)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in _FIRST_POSITION:
        return False
    if getattr(config, "position_embedding_type", "absolute") != "absolute" or getattr(
        config, "is_decoder", False
    ):
        return False
    emb = getattr(model, "embeddings", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if emb is None or not layers:
        return False
    if not all(
        hasattr(emb, n)
        for n in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm")
    ):
        return False
    parts = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "attention.output.LayerNorm", "intermediate.dense", "intermediate.intermediate_act_fn",
             "output.dense", "output.LayerNorm")  # fmt: skip
    return all(_has(layer, part) for layer in layers for part in parts)


def _has(obj: Any, dotted: str) -> bool:
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return False
    return True


def flatten(inputs: dict[str, Any], first_position: int, dtype: Any) -> dict[str, Any]:
    """The unpadded forward's arguments from a right-padded batch (``input_ids``,
    ``attention_mask``, optional ``token_type_ids``, each ``(batch, width)``)."""
    import torch

    real = inputs["attention_mask"].bool()
    batch, width = real.shape
    lengths = real.sum(dim=1)
    columns = torch.arange(width).expand(batch, width)
    starts = lengths.cumsum(0) - lengths
    types = inputs.get("token_type_ids")
    ids = inputs["input_ids"][real]
    return {
        "ids": ids,
        "positions": columns[real] + first_position,
        "types": types[real] if types is not None else torch.zeros_like(ids),
        "gather": torch.where(real, starts[:, None] + columns, 0),
        "scatter": (torch.arange(batch)[:, None] * width + columns)[real],
        "mask": additive_mask(inputs["attention_mask"], dtype),
    }


def first_position(model: Any) -> int:
    """The position index of a text's first token (RoBERTa's family: after its padding index)."""
    offset = _FIRST_POSITION[model.config.model_type]
    padding = getattr(model.embeddings, "padding_idx", None)
    return offset if not offset or padding is None else int(padding) + 1


def checked_twin(twin: Any, inputs: dict[str, Any]) -> Any | None:
    """The unpadded forward of ``twin`` (the padded model that would be compiled, in eager
    attention) if it has the layout and gives ``twin``'s own last hidden states on ``inputs``
    (a padded batch), token by token (:data:`SAME`); else None."""
    if not has_layout(twin):
        return None
    try:
        unpadded = unpadded_class()(twin).eval()
        start = first_position(twin)
        dtype = next(twin.parameters()).dtype
        expected = twin(**inputs)[0]
        got, _ = unpadded(**flatten(inputs, start, dtype))
    except Exception:  # a layer that takes other arguments, a shape it cannot take, ...
        return None
    if got.shape != expected.shape or not same_token_states(expected, got, inputs["attention_mask"], SAME):
        return None
    return unpadded
