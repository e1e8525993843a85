"""The library face: :class:`Index` (build, open, search, update; every topology), its model glue
and the build pipeline. ``from simsearch.index import Index, Hit`` keeps working."""

from __future__ import annotations

from simsearch.search.hits import Hit
from simsearch.index.api import Index, open_path, opened
from simsearch.index.build import check_unit_rows, encode_tune_queries
from simsearch.index.model import check_encoder, load_encoder
from simsearch.store.manifest_fields import check_own_model, derived_id_rule
from simsearch.store.write.commit import BuildStats, commit_build, tune_query_texts
from simsearch.validate import check_queries, check_query

__all__ = [
    "BuildStats",
    "Hit",
    "Index",
    "check_encoder",
    "check_own_model",
    "check_queries",
    "check_query",
    "check_unit_rows",
    "commit_build",
    "derived_id_rule",
    "encode_tune_queries",
    "load_encoder",
    "open_path",
    "opened",
    "tune_query_texts",
]
