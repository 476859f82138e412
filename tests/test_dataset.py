"""Splits in time, the transform fitted on the training part only, and the sine as a Dataset."""

import numpy as np
import pytest
from conftest import seasonal_series

from tf_sine.config import Config
from tf_sine.data import sine_windows
from tf_sine.dataset import (
    Transform,
    detect_period,
    has_trend,
    range_warnings,
    sine_dataset,
    split_series,
)
from tf_sine.evaluation import rmse


@pytest.mark.parametrize("difference", [False, True])
def test_parts_are_chronological_disjoint_and_cover_the_series(difference):
    data = split_series(np.arange(200.0), (0.6, 0.2, 0.2), timesteps=7, difference=difference)
    parts = np.concatenate([data.train_targets, data.val_targets, data.test_targets])
    np.testing.assert_array_equal(parts, np.arange(7 + difference, 200))  # every value once, in order
    assert (data.train_targets[-1], data.val_targets[0], data.test_targets[0]) == (119, 120, 160)


@pytest.mark.parametrize("layout", ["legacy", "sequence"])
def test_windows_are_the_values_before_each_target(layout):
    levels = seasonal_series(100)
    data = split_series(levels, (0.7, 0.15, 0.15), timesteps=5)
    x, y = data.windows(Transform(), data.test_targets, 5, layout)
    for row, target in enumerate(data.test_targets):
        np.testing.assert_array_equal(x[row].ravel(), levels[target - 5 : target].astype(np.float32))
        assert y[row, 0] == np.float32(levels[target])


def test_scaling_is_fitted_on_the_training_part_only():
    levels = seasonal_series(300)
    data = split_series(levels, (0.7, 0.15, 0.15), timesteps=12)
    changed = levels.copy()
    changed[data.train_end :] *= 100  # whatever happens later must not leak into the scaling
    other = split_series(changed, (0.7, 0.15, 0.15), timesteps=12)
    for scale in ("standard", "minmax"):
        assert Transform.fit(data, scale) == Transform.fit(other, scale)
    standard = Transform.fit(data, "standard")
    assert standard.offset == pytest.approx(levels[: data.train_end].mean())
    assert standard.factor == pytest.approx(levels[: data.train_end].std())
    encoded = Transform.fit(data, "minmax").encode(levels[: data.train_end])
    assert (encoded.min(), encoded.max()) == pytest.approx((0.0, 1.0))


@pytest.mark.parametrize("scale", ["none", "standard", "minmax"])
@pytest.mark.parametrize("difference", [False, True])
def test_decode_inverts_encode(scale, difference):
    levels = seasonal_series(120)
    data = split_series(levels, (0.7, 0.15, 0.15), timesteps=6, difference=difference)
    transform = Transform.fit(data, scale, difference)
    encoded = transform.encode(levels)
    targets = np.arange(1 + difference, 120)
    np.testing.assert_allclose(transform.decode(encoded[targets], levels[targets - 1]), levels[targets])
    assert Transform.from_dict(transform.to_dict()) == transform


@pytest.mark.parametrize("layout", ["legacy", "sequence"])
def test_the_sine_dataset_gives_the_source_windows_bit_for_bit(layout):
    data = sine_dataset(10)
    transform = Transform.for_config(data, Config())
    ours = data.windows(transform, data.train_targets, 10, layout) + data.windows(
        transform, data.test_targets, 10, layout
    )
    for mine, source in zip(ours, sine_windows(10, layout), strict=True):
        assert mine.dtype == source.dtype
        np.testing.assert_array_equal(mine, source)


def test_too_short_a_series_names_the_length_it_needs():
    with pytest.raises(ValueError, match=r"^data: expected at least 16 values for one window of 10 steps plus "
                                         r"the split 0.7,0.15,0.15, got 15$"):  # fmt: skip
        split_series(np.arange(15.0), (0.7, 0.15, 0.15), timesteps=10)
    split_series(np.arange(16.0), (0.7, 0.15, 0.15), timesteps=10)  # the length it named is enough


def test_season_detection():
    assert detect_period(seasonal_series(350)) == 12
    assert detect_period(seasonal_series(350, period=7)) == 7
    assert detect_period(sine_dataset(10).levels[:10000]) == 628  # 2 pi / 0.01
    assert detect_period(np.random.default_rng(0).normal(size=300)) is None
    assert detect_period(np.ones(50)) is None


def test_trend_detection_and_range_warnings():
    assert has_trend(seasonal_series(350)) and not has_trend(seasonal_series(350, trend=0.0))
    assert not has_trend(sine_dataset(10).levels[:10000])
    data = split_series(seasonal_series(500), (0.7, 0.15, 0.15), timesteps=12)
    warnings = range_warnings(data, Transform())
    assert len(warnings) == 2 and warnings[1].startswith("warning: the test part's values reach")
    assert warnings[1].endswith("consider `difference`")  # the CLI prints it as --difference
    differenced = split_series(seasonal_series(500), (0.7, 0.15, 0.15), timesteps=12, difference=True)
    assert range_warnings(differenced, Transform(difference=True)) == []


def test_a_series_near_1e_minus_300_is_scaled_to_unit_spread_and_scored_in_its_units():
    """Squares of values near 1e-300 underflow to zero: the standard scaling's spread and the
    RMSE are then taken on the values divided by their largest, not reported as 0 (which left
    the model reading zeros in float32 and every score 0)."""
    levels = (10 + np.sin(np.arange(200) / 3)) * 1e-300
    data = split_series(levels, (0.7, 0.15, 0.15), 10)
    encoded = Transform.fit(data, "standard").encode(levels[: data.train_end])
    assert 0.99 < np.std(encoded) < 1.01
    errors = levels * 0.01
    expected = 1e-300 * float(np.sqrt(np.mean((errors / 1e-300) ** 2)))
    assert rmse(levels + errors, levels) == pytest.approx(expected, rel=1e-12)
