"""Labels against a brute-force loop, windows, and splits that cannot leak."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from finscale.data.labels import make_labels
from finscale.data.normalization import fit_normalization, training_rows
from finscale.data.windows import (
    Splits,
    Windows,
    make_windows,
    split_chronological,
    split_chunks,
)
from finscale.errors import DataError

prices = st.lists(st.floats(min_value=1.0, max_value=200.0), min_size=2, max_size=80)


def brute_force_labels(close, high, horizon, threshold, target):  # type: ignore[no-untyped-def]
    out = []
    for t in range(len(close) - horizon):
        future = (high if target == "high" else close)[t + 1 : t + 1 + horizon]
        out.append(1.0 if max(future) >= close[t] * (1 + threshold) else 0.0)
    return out


@settings(max_examples=200, deadline=None)
@given(
    close=prices,
    bump=st.lists(st.floats(min_value=0.0, max_value=0.05), min_size=80, max_size=80),
    horizon=st.integers(1, 10),
    threshold=st.sampled_from([0.0, 0.005, 0.01, 0.02, 0.05]),
    target=st.sampled_from(["close", "high"]),
)
def test_labels_match_a_brute_force_loop(close, bump, horizon, threshold, target) -> None:  # type: ignore[no-untyped-def]
    close = np.array(close)
    high = close * (1 + np.array(bump[: len(close)]))
    got = make_labels(close, high, horizon=horizon, threshold=threshold, target=target)
    assert got.dtype == np.float32
    assert got.tolist() == brute_force_labels(close, high, horizon, threshold, target)


def test_high_target_counts_intraday_touches() -> None:
    close = np.array([100.0, 100.5, 100.2])
    high = np.array([100.0, 101.0, 100.4])
    assert make_labels(close, high, horizon=2, threshold=0.01, target="close").tolist() == [0.0]
    assert make_labels(close, high, horizon=2, threshold=0.01, target="high").tolist() == [1.0]


def test_high_target_needs_highs() -> None:
    with pytest.raises(ValueError, match="needs the High column"):
        make_labels(np.ones(5), None, horizon=1, threshold=0.01, target="high")


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    from tests.conftest import random_walk_bars

    frame = random_walk_bars(n, seed=seed)
    frame["rsi_daily"] = np.linspace(20, 80, n)  # a bounded column
    return frame


def test_window_label_is_the_label_of_its_last_context_day() -> None:
    frame = _frame(300)
    w = make_windows(frame, context_length=20, horizon=3, threshold=0.01, target="high")
    close, high = frame["Close"].to_numpy(), frame["High"].to_numpy()
    day_labels = brute_force_labels(close, high, 3, 0.01, "high")
    assert w.n_windows == 300 - 20 - 3 + 1
    for s in (0, 17, w.n_windows - 1):
        assert w.labels[s] == day_labels[s + 20 - 1]
    batch = w.gather(np.array([0, 5]))
    assert batch.shape == (2, 20, len(w.columns))
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], frame[list(w.columns)].to_numpy(dtype="float32")[5:25])
    assert "Date" not in w.columns


def test_too_short_a_dataset_is_refused() -> None:
    with pytest.raises(
        DataError,
        match=r"dataset: 30 rows, fewer than one window of 61 \(context 60 \+ horizon 1\)",
    ):
        make_windows(_frame(30), context_length=60, horizon=1, threshold=0.01)


def _blocked(splits: Splits, n_rows: int) -> np.ndarray:
    blocked = np.zeros(n_rows, dtype=bool)
    for region in splits.regions:
        blocked[region.first : region.last + 1 + splits.embargo_rows] = True
    return blocked


def _check_no_leak(w: Windows, splits: Splits) -> None:
    n_rows = len(w.features)
    span = w.span
    region_rows = {"val": np.zeros(n_rows, bool), "test": np.zeros(n_rows, bool)}
    for region in splits.regions:
        region_rows[region.name][region.first : region.last + 1] = True
    blocked = _blocked(splits, n_rows)
    # No training window's context or label days touch a val/test row or the embargo after it.
    for s in splits.train:
        assert not blocked[s : s + span].any()
    # Val and test windows lie inside their regions, and use every window there.
    for name in ("val", "test"):
        starts = getattr(splits, name)
        for s in starts:
            assert region_rows[name][s : s + span].all()
        expected = sum(
            max(0, r.last - r.first + 1 - span + 1) for r in splits.regions if r.name == name
        )
        assert len(starts) == expected
    assert not set(splits.val.tolist()) & set(splits.test.tolist())
    # Training keeps every window that is clear of val/test and embargo rows.
    clear = [s for s in range(w.n_windows) if not blocked[s : s + span].any()]
    assert splits.train.tolist() == clear


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(150, 600),
    context=st.integers(2, 40),
    horizon=st.integers(1, 10),
    embargo=st.integers(0, 60),
    val_at=st.floats(0.3, 0.8),
    test_len=st.floats(0.0, 0.3),
)
def test_chronological_splits_never_leak(
    n_rows, context, horizon, embargo, val_at, test_len
) -> None:  # type: ignore[no-untyped-def]
    frame = _frame(n_rows)
    w = make_windows(frame, context_length=context, horizon=horizon, threshold=0.01)
    dates = frame["Date"].dt.date
    val_row = int(n_rows * val_at)
    test_row = min(n_rows - 1, val_row + 1 + int(n_rows * test_len))
    test_start = dates.iloc[test_row] if test_len > 0 and test_row > val_row else None
    splits = split_chronological(
        w,
        val_start=dates.iloc[val_row],
        test_start=test_start,
        embargo_rows=embargo,
        min_train_windows=0,
        min_val_windows=0,
        min_test_windows=0,
    )
    _check_no_leak(w, splits)
    assert all(s + w.span <= val_row for s in splits.train)


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(150, 800),
    context=st.integers(2, 40),
    horizon=st.integers(1, 10),
    embargo=st.integers(0, 60),
    n_blocks=st.integers(3, 12),
    val_blocks=st.integers(1, 3),
    test_blocks=st.integers(0, 3),
    seed=st.integers(0, 1000),
)
def test_chunk_splits_never_leak(
    n_rows, context, horizon, embargo, n_blocks, val_blocks, test_blocks, seed
) -> None:  # type: ignore[no-untyped-def]
    assume(val_blocks + test_blocks < n_blocks)
    w = make_windows(_frame(n_rows), context_length=context, horizon=horizon, threshold=0.01)
    splits = split_chunks(
        w,
        n_blocks=n_blocks,
        val_blocks=val_blocks,
        test_blocks=test_blocks,
        seed=seed,
        embargo_rows=embargo,
        min_train_windows=0,
        min_val_windows=0,
        min_test_windows=0,
    )
    _check_no_leak(w, splits)
    covered = sum(r.last - r.first + 1 for r in splits.regions)
    assert covered == pytest.approx(
        n_rows * (val_blocks + test_blocks) / n_blocks, abs=val_blocks + test_blocks
    )


def test_chunk_splits_are_seeded() -> None:
    w = make_windows(_frame(2000), context_length=20, horizon=1, threshold=0.01)
    kwargs = {
        "n_blocks": 10,
        "val_blocks": 2,
        "test_blocks": 2,
        "min_val_windows": 100,
        "min_test_windows": 100,
    }
    a, b = split_chunks(w, seed=7, **kwargs), split_chunks(w, seed=7, **kwargs)
    c = split_chunks(w, seed=8, **kwargs)
    assert a.regions == b.regions and np.array_equal(a.val, b.val)
    assert a.regions != c.regions


def test_each_val_chunk_holds_many_windows_not_one() -> None:
    """The research system's chunks gave one window each: 19 validation samples."""
    w = make_windows(_frame(4000), context_length=60, horizon=1, threshold=0.01)
    splits = split_chunks(w, n_blocks=10, val_blocks=2, test_blocks=2, seed=0)
    per_region = [
        len([s for s in splits.val if r.first <= s <= r.last])
        for r in splits.regions
        if r.name == "val"
    ]
    assert all(n >= 300 for n in per_region)


def test_chronological_dates_snap_to_the_next_trading_day() -> None:
    frame = _frame(600)  # business days from 2000-01-03
    w = make_windows(frame, context_length=10, horizon=1, threshold=0.01)
    splits = split_chronological(
        w,
        val_start=date(2001, 1, 6),
        test_start=date(2001, 7, 1),  # a Saturday, a Sunday
        min_val_windows=10,
        min_test_windows=10,
    )
    first_val = next(r for r in splits.regions if r.name == "val").first
    assert str(w.dates[first_val]) == "2001-01-08"


BAD_SPLITS = [
    pytest.param(
        {"val_start": date(2001, 6, 1), "test_start": date(2001, 1, 1)},
        r"test_start 2001-01-01 must come after val_start 2001-06-01",
        id="test-before-val",
    ),
    pytest.param(
        {"val_start": date(2030, 1, 1)},
        r"val_start 2030-01-01 is after the last date of the dataset",
        id="after-the-end",
    ),
    pytest.param(
        {"val_start": date(2002, 1, 1), "test_start": date(2002, 3, 1)},
        r"val split: \d+ windows in 2002-01-01\.\.2002-02-28 "
        r"\(span 61 = context 60 \+ horizon 1\), fewer than the minimum of 200 \(min_val_windows\)",
        id="too-few-val-windows",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_SPLITS)
def test_bad_chronological_splits_are_refused(kwargs: dict[str, date], message: str) -> None:
    w = make_windows(_frame(800), context_length=60, horizon=1, threshold=0.01)
    with pytest.raises(DataError, match=message):
        split_chronological(w, **kwargs)


def test_bad_chunk_counts_are_refused() -> None:
    w = make_windows(_frame(800), context_length=20, horizon=1, threshold=0.01)
    with pytest.raises(DataError, match=r"n_blocks=4, val_blocks=2, test_blocks=2"):
        split_chunks(w, n_blocks=4, val_blocks=2, test_blocks=2)


# --- normalization ---


def test_normalization_reads_no_validation_or_test_row() -> None:
    frame = _frame(1200)
    w = make_windows(frame, context_length=30, horizon=5, threshold=0.01)
    splits = split_chunks(
        w,
        n_blocks=6,
        val_blocks=1,
        test_blocks=1,
        seed=3,
        embargo_rows=20,
        min_train_windows=100,
        min_val_windows=100,
        min_test_windows=100,
    )
    fitted = fit_normalization(w.features, w.columns, train_starts=splits.train, context_length=30)
    # Wreck every row no training window reads: the statistics must not move.
    used = training_rows(splits.train, 30, len(w.features))
    assert not used[_blocked(splits, len(w.features))].any()
    wrecked = w.features.copy()
    wrecked[~used] = 1e6
    again = fit_normalization(wrecked, w.columns, train_starts=splits.train, context_length=30)
    np.testing.assert_array_equal(fitted.mean, again.mean)
    np.testing.assert_array_equal(fitted.std, again.std)
    # And the statistics are those of the training rows.
    close = w.columns.index("Close")
    assert fitted.mean[close] == pytest.approx(w.features[used, close].mean(), rel=1e-6)


def test_bounded_oscillators_keep_their_scale() -> None:
    w = make_windows(_frame(500), context_length=20, horizon=1, threshold=0.01)
    norm = fit_normalization(w.features, w.columns, train_starts=np.arange(300), context_length=20)
    out = norm.apply(w.features)
    rsi, close = w.columns.index("rsi_daily"), w.columns.index("Close")
    np.testing.assert_allclose(out[:, rsi], w.features[:, rsi])
    train_rows = out[:319, close]
    assert abs(train_rows.mean()) < 1e-3 and abs(train_rows.std() - 1) < 1e-3
    assert not norm.scaled[rsi] and norm.scaled[close]


def test_constant_column_is_centred_not_divided_by_zero(caplog: pytest.LogCaptureFixture) -> None:
    features = np.ones((50, 2), dtype="float32")
    features[:, 1] = np.arange(50)
    norm = fit_normalization(
        features, ("flat", "ramp"), train_starts=np.arange(30), context_length=5
    )
    assert np.isfinite(norm.apply(features)).all()
    assert "flat" in caplog.text
