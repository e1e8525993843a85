"""Length batches: every row once, longest first, bounded in rows and in padded tokens."""

from __future__ import annotations

import numpy as np

from simsearch.encode.batching import TOKENS_PER_ROW, length_batches


def test_every_row_once_longest_first():
    lengths = [5, 300, 12, 12, 40, 1, 7, 90, 23]
    batches = list(length_batches(lengths, 3))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in rows] == sorted(lengths, reverse=True)


def test_batches_bounded_in_rows_and_padded_tokens():
    lengths = [200, 150, 120, 100, 64, 40, 33, 30, 20, 20, 20, 20, 20, 10]
    for batch in length_batches(lengths, 4):
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= 4
        assert len(batch) == 1 or padded <= 4 * TOKENS_PER_ROW
    short = list(length_batches([10] * 10, 4))  # short texts: full batches
    assert [len(b) for b in short] == [4, 4, 2]


def test_a_text_longer_than_the_budget_is_a_batch_of_its_own():
    assert [b.tolist() for b in length_batches([10_000, 3], 2)] == [[0], [1]]
