"""Pooling strategies (token states -> one sentence vector) and L2 normalisation.

Each strategy is a small pure function registered in :data:`POOLERS`; adding one means adding a
function, not a flag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # torch loads with the encoder, not with the CLI's option parsing
    import torch

PoolFn = Callable[[Any, "torch.Tensor"], "torch.Tensor"]

#: Norms below this are treated as zero so an all-zero vector stays zero instead of NaN.
EPSILON = 1e-12


def pool_pooler(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """BERT's ``pooler_output``: tanh(dense(CLS state)), trained on next-sentence prediction."""
    return outputs.pooler_output


def pool_cls(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last hidden state of the first ([CLS]) token."""
    return outputs.last_hidden_state[:, 0]


def pool_mean(outputs: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states, padding excluded via the attention mask."""
    states = outputs.last_hidden_state
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    summed = (states * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


POOLERS: dict[str, PoolFn] = {"pooler": pool_pooler, "cls": pool_cls, "mean": pool_mean}

#: What ``--pooling`` accepts: the registered strategies plus ``auto``.
POOLING_CHOICES = ("auto", *POOLERS)


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Scale rows to unit length, epsilon-safe (as sentence-transformers' Normalize module)."""
    from torch.nn.functional import normalize

    return normalize(vectors, p=2, dim=1, eps=EPSILON)
