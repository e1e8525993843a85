"""What every build commits, local or on Ray: the manifest fields of a new index, its tuning
queries checked, and the stats it reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from simsearch.errors import InputError
from simsearch.store.manifest_fields import manifest_fields

if TYPE_CHECKING:
    from simsearch.store.lexical.analyzer import Analyzer
    from simsearch.encode import Encoder
    from simsearch.store.write.bulk import Sink


@dataclass(frozen=True)
class BuildStats:
    """What a build did: documents stored, inputs cut at the model's limit, seconds spent."""

    documents: int
    truncated: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else float("inf")


def commit_build(
    sink: Sink,
    encoder: Encoder,
    path: Path,
    truncated: int,
    index_type: str,
    target_recall: float,
    *,
    lexical: Analyzer | None = None,
    tune_vectors: np.ndarray | None = None,
) -> int:
    """Commit a build's sink (local or Ray); returns the document count. Empty input is an error.

    ``lexical`` (None: no lexical part) is the analyzer whose settings are recorded; the writer
    then builds the BM25 part of each index directory (each shard of a sharded one) in the same
    commit. ``tune_vectors``: the
    tuning queries' vectors (:func:`tune_query_texts`), None to tune on stored vectors."""
    count = sink.count()
    if count == 0:
        raise InputError("the input holds no documents (only empty lines or records?)")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fields = manifest_fields(encoder, path, now, now, truncated)
    if lexical is not None:
        from simsearch.store.lexical import new_settings

        fields["lexical"] = new_settings(lexical)
    sink.commit(fields, index_type, target_recall, tune_vectors)
    return int(count)


def tune_query_texts(queries: Sequence[str] | None) -> list[str] | None:
    """The ANN tuning queries, checked (a build checks them before it starts, so a bad query file
    fails at once); more than :data:`~simsearch.store.tuning.TUNE_QUERIES` are thinned to that
    many, drawn reproducibly, so a long query log costs a bounded encoding and tuning time."""
    if queries is None:
        return None
    if isinstance(queries, str):
        raise InputError("tune_queries is a list of query texts, not one string")
    from simsearch.store.tuning import TUNE_QUERIES

    texts = [q.strip() for q in queries if q.strip()]
    if not texts:
        raise InputError("the tuning queries hold no query (only empty lines?); give one query per line")
    if len(texts) > TUNE_QUERIES:
        picks = np.sort(np.random.default_rng(0).choice(len(texts), TUNE_QUERIES, replace=False))
        texts = [texts[i] for i in picks]
    return texts
