"""The model fingerprint an index records at build, and the one place it is compared.

The manifest's ``fingerprint`` section (its only new key; see docs/safety.md)::

    "fingerprint": {"model": "<sha256 over the model's weight, tokenizer and config files, or null>",
                    "identity": "<sha256 over model, pooling, dim, max_length, precision, ... and
                                  the model fingerprint>"}

``model`` changes when the files in the model directory do (replaced weights or tokenizer);
``identity`` changes when the manifest's own fields that decide the vectors are edited (pooling,
precision, ...). Indexes built before fingerprints have no section and keep working; verify says so
and ``verify --record-fingerprint`` records one explicitly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from simsearch.errors import IndexCorruptError, ModelError

KEY = "fingerprint"
#: Manifest fields that decide which vectors a text gets (``model_path`` is where, not what).
IDENTITY_FIELDS = ("model", "pooling", "dim", "max_length", "precision", "normalized", "metric")


def recorded(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's fingerprint section, or None for an index built before fingerprints."""
    section = manifest.get(KEY)
    return section if isinstance(section, dict) else None


def fingerprint_fields(fields: Mapping[str, Any], model_dir: Path | None) -> dict[str, Any]:
    """``{"fingerprint": ...}`` for a manifest holding ``fields``, the model read from ``model_dir``
    (None or not a directory, e.g. a test encoder: only the identity is recorded)."""
    model = (
        _model_fingerprint(model_dir, remember=True) if model_dir is not None and model_dir.is_dir() else None
    )
    return {KEY: {"model": model, "identity": identity_hash(fields, model)}}


def identity_hash(fields: Mapping[str, Any], model: str | None) -> str:
    identity = {key: fields.get(key) for key in IDENTITY_FIELDS}
    identity.setdefault("precision", "fp32")
    if identity["precision"] is None:
        identity["precision"] = "fp32"
    text = json.dumps([identity, model], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_identity(file: Path, manifest: Mapping[str, Any]) -> None:
    """An edited model, pooling, precision, ... in the manifest is damage, not a setting."""
    if KEY not in manifest:
        return
    section = recorded(manifest)
    if (
        section is None
        or not isinstance(section.get("identity"), str)
        or not isinstance(section.get("model"), (str, type(None)))
    ):
        raise IndexCorruptError(
            f"{file}: malformed '{KEY}' section in the manifest; restore the manifest or rebuild the index"
        )
    if identity_hash(manifest, section["model"]) != section["identity"]:
        shown = ", ".join(f"{k} {manifest.get(k)!r}" for k in ("model", "pooling", "precision"))
        raise IndexCorruptError(
            f"{file}: the manifest's model settings ({shown}, ...) are not those the index was built "
            "with (the manifest was edited); its vectors would not match queries: restore the "
            "manifest or rebuild the index"
        )


def check_model_files(manifest: Mapping[str, Any], model_dir: Path | None) -> None:
    """Refuse a model whose files differ from those the index was built with."""
    problem = model_problem(manifest, model_dir)
    if problem:
        raise ModelError(problem)


def model_problem(manifest: Mapping[str, Any], model_dir: Path | None) -> str | None:
    """Why the model in ``model_dir`` is not the index's (None when it is, or cannot be told)."""
    section = recorded(manifest)
    if section is None or not section.get("model") or model_dir is None or not model_dir.is_dir():
        return None
    current = _model_fingerprint(model_dir)
    if current == section["model"]:
        return None
    return (
        f"the model files in {model_dir} are not those index {manifest.get('name', '')!r} was "
        f"built with (fingerprint {section['model'][:12]}... recorded, {current[:12]}... now): "
        "its vectors would not match; restore that model, or rebuild the index with "
        "`simsearch build --force`"
    )


def _model_fingerprint(model_dir: Path, *, remember: bool = False) -> str:
    from simsearch.model_files import model_fingerprint

    return model_fingerprint(model_dir, remember=remember)
