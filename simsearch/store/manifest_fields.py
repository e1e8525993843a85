"""The manifest fields a build records about its model and inputs, and what they say back.

The model's identity (id, path, pooling, dimension, precision) and fingerprint, the input rules
in force (``inputs``), and the ``embedding`` section of vectors that come from an embedding
outside simsearch (a LangChain ``Embeddings``), which no model of ours can extend or query.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from simsearch import __version__
from simsearch.errors import ModelError
from simsearch.store.fingerprint import fingerprint_fields

if TYPE_CHECKING:
    from simsearch.encode import Encoder


# This version's manifest keys about input handling, in one section of their own.
INPUTS = {"derived_ids": "resolved"}


def derived_id_rule(manifest: Mapping[str, Any]) -> str:
    """The id rule an index was built under: indexes older than the rule keep paths as given,
    so re-adding a source spelled as before still finds its documents."""
    return str((manifest.get("inputs") or {}).get("derived_ids", "as-given"))


def model_dir(model_path: str | os.PathLike[str] | None) -> Path | None:
    """The model directory an encoder reads (None for test encoders without one)."""
    return Path(model_path) if model_path and Path(model_path).is_dir() else None


def manifest_fields(
    encoder: Encoder, path: Path, created: str, updated: str, truncated: int
) -> dict[str, Any]:
    """What a build records about ``encoder`` and its inputs, fingerprint included."""
    fields = _identity_fields(encoder, path, created, updated, truncated)
    return {**fields, **fingerprint_fields(fields, model_dir(encoder.model_path))}


def _identity_fields(
    encoder: Encoder, path: Path, created: str, updated: str, truncated: int
) -> dict[str, Any]:
    return {
        "name": path.name,
        "simsearch_version": __version__,
        "model": encoder.model_id,
        "model_path": str(encoder.model_path),
        "pooling": encoder.pooling,
        "dim": encoder.dim,
        "normalized": True,
        "max_length": encoder.max_length,
        "precision": getattr(encoder, "precision", "fp32"),
        "metric": "inner_product",
        "index_type": "flat",
        "truncated": truncated,
        "created": created,
        "updated": updated,
        # An adapter over a foreign embedding says so in its own section (see foreign_embedding).
        **({"embedding": encoder.embedding_section} if hasattr(encoder, "embedding_section") else {}),
        "inputs": dict(INPUTS),
    }


def foreign_embedding(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``embedding`` section: set when the vectors come from an embedding outside
    simsearch (a LangChain ``Embeddings``), ``{"kind", "class", "dim"}``; None for our own models."""
    section = manifest.get("embedding")
    return section if isinstance(section, dict) else None


# The adapter that opens an index whose vectors came from each kind of foreign embedding.
_ADAPTERS = {
    "langchain": "simsearch.integrations.langchain.SimsearchVectorStore(embedding, path)",
    "haystack": "simsearch.integrations.haystack.SimsearchDocumentStore(path)",
    "llamaindex": "simsearch.integrations.llamaindex.SimsearchVectorStore(path)",
}


def check_own_model(manifest: Mapping[str, Any]) -> None:
    """Refuse to load a model for an index whose vectors come from a foreign embedding."""
    foreign = foreign_embedding(manifest)
    if foreign is not None:
        adapter = _ADAPTERS.get(str(foreign.get("kind")), _ADAPTERS["langchain"])
        raise ModelError(
            f"index {manifest.get('name', '')!r} holds vectors from the {foreign.get('kind', 'external')} "
            f"embedding {foreign.get('class', '?')!r} (dim {foreign.get('dim', manifest.get('dim'))}): "
            f"queries and additions need that embedding; open it with {adapter}"
        )
