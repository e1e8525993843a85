"""The model glue of an index: loading its own encoder, checking one that is handed in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from simsearch.errors import ModelError
from simsearch.store.manifest_fields import model_dir
from simsearch.store.fingerprint import check_model_files
from simsearch.store.manifest import EXACT_FACTORY, Manifest, identity_mismatch, identity_of

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def check_encoder(manifest: Manifest, encoder: Encoder, *, name: str | None = None) -> None:
    """Refuse an encoder whose model, pooling, dimension or precision differs from the index's.

    ``name``: the index as the user knows it (its directory's name; a sharded index's identity
    manifest is a shard's, whose own name is not the index's); default: the manifest's name."""
    problem = identity_mismatch(manifest.identity, identity_of(encoder))
    if problem:
        raise ModelError(f"index {name or manifest.name!r} was {problem}")
    check_model_files(manifest, model_dir(getattr(encoder, "model_path", None)))


def load_encoder(manifest: Manifest, *, device: str = "cpu") -> Encoder:
    """The index's own encoder: the cached ONNX export when there is one (no torch import), else
    the torch encoder from the model directory the manifest records (or its id); on a ``device``
    other than the CPU, always the torch encoder there."""
    from simsearch.encode.onnx_encoder import load

    check_model_files(manifest, model_dir(manifest.model_path))  # the model files of the build
    fast = None
    if device == "cpu":
        fast = load(
            manifest.model,
            manifest.model_path,
            manifest.pooling,
            manifest.max_length,
            manifest.precision,
            spin=manifest.factory != EXACT_FACTORY,
        )
    if fast is not None:
        return fast
    from simsearch.encode.models import ModelSource
    from simsearch.encode.torch_encoder import Encoder as TorchEncoder

    stored = Path(manifest.model_path)
    if manifest.model_path and stored.is_dir():
        return TorchEncoder(
            ModelSource(manifest.model, stored),
            manifest.pooling,
            max_length=manifest.max_length,
            precision=manifest.precision,
            device=device,
        )
    encoder = TorchEncoder(
        manifest.model,
        manifest.pooling,
        max_length=manifest.max_length,
        precision=manifest.precision,
        device=device,
    )
    check_model_files(manifest, model_dir(encoder.model_path))  # found again by id: check it
    return encoder
