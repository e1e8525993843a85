"""The encoder an evaluation runs: the one given, or one built from the encoder options; and the
model fields a report names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simsearch.store.manifest import identity_of

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def encoder_fields(encoder: Encoder) -> dict[str, Any]:
    """The model a report names: ``model``, ``pooling``, ``max_length``, ``precision``."""
    return identity_of(encoder).report_fields()


def make_encoder(encoder: Encoder | None, options: dict[str, Any]) -> Encoder:
    """``encoder`` itself, else a torch :class:`~simsearch.encode.torch_encoder.Encoder` of ``options``."""
    if encoder is not None:
        if options:
            raise TypeError(f"pass either an encoder or encoder options, not both ({', '.join(options)})")
        return encoder
    from simsearch.encode.torch_encoder import Encoder as TorchEncoder

    return TorchEncoder(**options)
