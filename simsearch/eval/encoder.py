"""The encoder an evaluation runs: the one given, or one built from the encoder options; and the
model fields a report names.
"""

from __future__ import annotations

from typing import Any


def encoder_fields(encoder: Any) -> dict[str, Any]:
    """The model a report names: ``model``, ``pooling``, ``max_length``, ``precision``."""
    return {
        "model": encoder.model_id,
        "pooling": encoder.pooling,
        "max_length": encoder.max_length,
        "precision": getattr(encoder, "precision", "fp32"),
    }


def make_encoder(encoder: Any, options: dict[str, Any]) -> Any:
    """``encoder`` itself, else a torch :class:`~simsearch.encode.torch_encoder.Encoder` of ``options``."""
    if encoder is not None:
        if options:
            raise TypeError(f"pass either an encoder or encoder options, not both ({', '.join(options)})")
        return encoder
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(**options)
