"""Length batches: every row once, longest first, bounded in rows and in padded tokens."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.encode.batching import TOKENS_PER_ROW, length_batches, run_batches


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


def test_batches_run_side_by_side_give_what_one_at_a_time_gives() -> None:
    import threading

    lengths = [3, 40, 7, 7, 1, 25, 12, 9, 30, 2, 5]
    ids = [list(range(n)) for n in lengths]
    threads: set[str] = set()
    second = threading.Event()

    def forward(batch):
        name = threading.current_thread().name
        threads.add(name)
        if len(threads) >= 2:
            second.set()
        if name.startswith("encode"):  # each batch waits until two threads have one: they overlap
            assert second.wait(10)
        return np.array([[len(seq), sum(seq)] for seq in batch], dtype=np.float32)

    one, both = np.zeros((len(ids), 2), np.float32), np.zeros((len(ids), 2), np.float32)
    seen: list[int] = []
    run_batches(ids, 2, forward, one)
    threads.clear()
    run_batches(ids, 2, forward, both, progress=seen.append, workers=2)
    assert np.array_equal(one, both) and one[:, 0].tolist() == lengths
    assert sum(seen) == len(ids) and len(threads) == 2


def test_a_failing_batch_fails_the_call_with_its_own_error() -> None:
    def forward(batch):
        if any(len(seq) == 7 for seq in batch):
            raise ValueError("batch with a 7")
        return np.zeros((len(batch), 1), np.float32)

    with pytest.raises(ValueError, match="batch with a 7"):
        run_batches([[1] * n for n in (3, 7, 9, 1)], 1, forward, np.zeros((4, 1), np.float32), workers=2)


def test_padded_ids_right_pads_each_row_with_its_mask() -> None:
    from simsearch.encode.batching import padded_ids

    ids, mask = padded_ids([[101, 7, 8, 102], [101, 102], [101, 9, 102]], pad_id=3)
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.tolist() == [[101, 7, 8, 102], [101, 102, 3, 3], [101, 9, 102, 3]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
    one, one_mask = padded_ids([(5, 6)], pad_id=0)  # tuples too, a single row: no padding
    assert one.tolist() == [[5, 6]] and one_mask.tolist() == [[1, 1]]
