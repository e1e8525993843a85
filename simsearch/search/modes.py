"""The search modes and which one a query runs in (dense, lexical or hybrid)."""

from __future__ import annotations

from typing import Any, Mapping

from simsearch.errors import QueryError
from simsearch.search.request import MODES
from simsearch.store import lexical

__all__ = ["MODES", "check_mode", "default_mode"]


def default_mode(manifest: Mapping[str, Any]) -> str:
    """hybrid for an index with a lexical part, dense for older ones (measured: docs/hybrid.md)."""
    return "hybrid" if lexical.lexical_settings(dict(manifest)) is not None else "dense"


def check_mode(mode: str | None, manifest: Mapping[str, Any], min_score: float | None = None) -> str:
    """The mode a search runs in: ``mode`` checked against what the index holds (its default
    when None); ``min_score`` filters by cosine, which lexical mode does not compute."""
    if mode is None:
        mode = default_mode(manifest)
    elif mode not in MODES:
        raise QueryError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    elif mode != "dense" and lexical.lexical_settings(dict(manifest)) is None:
        raise QueryError(
            f"index {manifest.get('name', '')!r} has no lexical part (built before "
            f"simsearch had one), so mode {mode!r} is unavailable; add it with "
            "`simsearch reindex-lexical NAME` or search with --mode dense"
        )
    if min_score is not None and mode == "lexical":
        raise QueryError(
            "min_score filters by cosine, which lexical mode does not compute; "
            "drop it or use --mode dense or hybrid"
        )
    return mode
