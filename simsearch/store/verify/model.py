"""The model checks of ``verify``: the model files are the build's (fingerprint), and the index's
model loads and still writes into the index's space. The store builds no encoder: it is given one,
or a loader (:data:`EncoderLoader`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from simsearch.errors import SimsearchError
from simsearch.store.fingerprint import model_problem, recorded
from simsearch.store.manifest import Manifest, ModelIdentity, identity_mismatch, identity_of
from simsearch.store.verify.report import Check

if TYPE_CHECKING:
    from simsearch.encode import Encoder

#: Loads an index's own encoder from its manifest (the store never builds one itself).
EncoderLoader = Callable[[Manifest], "Encoder"]


def check_fingerprint(
    path: Path, manifest: Manifest, encoder: Encoder | None, add: Callable[[Check], None]
) -> bool:
    """The model files are those the index was built with (False: a mismatch)."""
    section = recorded(manifest)
    if section is None:
        add(
            Check(
                "model fingerprint",
                True,
                "no fingerprint recorded (index built before fingerprints); "
                f"`simsearch verify {path.name} --record-fingerprint` records one",
            )
        )
        return True
    if not section.get("model"):
        add(
            Check(
                "model fingerprint",
                True,
                "settings fingerprint matches; no model files were fingerprinted at build",
            )
        )
        return True
    directory = model_dir(encoder) if encoder is not None else model_dir(manifest)
    if directory is None:
        add(Check("model fingerprint", True, "settings fingerprint matches; model files not on disk"))
        return True
    problem = model_problem(manifest, directory)
    add(
        Check(
            "model fingerprint", problem is None, problem or f"{section['model'][:12]}... matches {directory}"
        )
    )
    return problem is None


def model_dir(holder: Encoder | Manifest) -> Path | None:
    """The model directory of an encoder or a manifest (None when there is none on disk)."""
    model_path = holder.model_path
    return Path(model_path) if model_path and Path(model_path).is_dir() else None


def check_loaded_model(
    manifest: Manifest,
    encoder: Encoder | None,
    load_encoder: EncoderLoader | None,
    add: Callable[[Check], None],
) -> Encoder | None:
    """The index's model loads (the way queries load it) and still writes into the index's space.

    The store builds no encoder: ``encoder`` (one checked at open) or ``load_encoder`` is given.
    """
    foreign = manifest.get("embedding")  # vectors from a LangChain embedding: no model of ours to load
    if isinstance(foreign, dict) and encoder is None:
        add(
            Check(
                "model",
                True,
                f"vectors from the {foreign.get('kind')} embedding "
                f"{foreign.get('class')!r} (dim {manifest.dim}); not loadable here",
            )
        )
        return None
    if encoder is None:
        if load_encoder is None:
            add(Check("model", False, "no encoder or model loader given: the model was not checked"))
            return None
        try:
            encoder = load_encoder(manifest)
        except SimsearchError as exc:
            add(Check("model", False, f"model {manifest.model!r} cannot be loaded: {exc}"))
            return None
    given = identity_of(encoder)
    problem = identity_mismatch(
        manifest.identity, ModelIdentity(manifest.model, given.pooling, given.dim, given.precision)
    )
    if problem:
        add(Check("model", False, f"model {manifest.model!r}: the index was {problem}"))
        return None
    add(Check("model", True, f"{manifest.model} ({encoder.pooling}, dim {encoder.dim}) loads"))
    return encoder
