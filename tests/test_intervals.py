"""Split-conformal prediction intervals: calibrated on the validation part, near nominal on the test part."""

import csv

import numpy as np
import pytest

from tf_sine.config import Config


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A small model on 3000 noisy seasonal values without a trend: 600 validation, 600 test."""
    from conftest import write_seasonal_csv

    from tf_sine.pipeline import run_experiment
    from tf_sine.trained import open_run

    folder = tmp_path_factory.mktemp("long")
    path = write_seasonal_csv(folder / "long.csv", n=3000, trend=0.0)
    config = Config(data=str(path), split=(0.6, 0.2, 0.2), units=8, steps=300, layout="sequence",
                    checkpoint_every=300)  # fmt: skip
    run_experiment(config, folder / "run", progress=False)
    return open_run(folder / "run")


def test_coverage_on_the_test_part_is_near_nominal_at_every_horizon(long_run):
    for level in (0.8, 0.9):
        interval = long_run.evaluate(horizon=3, interval=level)["interval"]
        assert interval["level"] == level and len(interval["coverage_by_horizon"]) == 3
        for coverage in interval["coverage_by_horizon"]:
            assert abs(coverage - level) < 0.05, interval
    # The reported widths are the half-widths a forecast's bounds sit at, either side.
    forecast = long_run.forecast(3, origin="test", interval=0.9)
    np.testing.assert_allclose(interval["half_width_by_horizon"], forecast.upper - forecast.values, rtol=1e-6)


def test_a_forecast_carries_the_interval_in_its_csv_and_bounds(long_run, tmp_path):
    from tf_sine.evaluation import conformal_widths

    forecast = long_run.forecast(4, origin="test", interval=0.9)
    widths = conformal_widths(long_run.model, long_run.dataset, long_run.transform, 4, 0.9)
    np.testing.assert_allclose(forecast.upper - forecast.values, widths)
    np.testing.assert_allclose(forecast.values - forecast.lower, widths)
    # The widths are order statistics of the validation part's absolute errors, computed here anew.
    data, model = long_run.dataset, long_run.model
    from tf_sine.evaluation import rollout

    validation = data.val_targets
    errors = np.abs(
        rollout(model, data, long_run.transform, validation - 1, 1)[:, 0] - data.levels[validation]
    )
    rank = int(np.ceil((len(validation) + 1) * 0.9))
    assert widths[0] == pytest.approx(np.sort(errors)[rank - 1], rel=1e-9)
    forecast.save(tmp_path)
    rows = list(csv.DictReader((tmp_path / "forecast.csv").open()))
    assert [float(row["lower"]) for row in rows] == pytest.approx(forecast.lower.tolist(), rel=1e-8)
    assert [float(row["upper"]) for row in rows] == pytest.approx(forecast.upper.tolist(), rel=1e-8)


@pytest.mark.parametrize(
    ("changes", "level", "message"),
    [
        ({}, 1.5, "interval: expected a coverage level between 0 and 1 such as 0.9, got 1.5"),
        ({}, 0.9999, "interval: expected at most 0.9983 with 600 validation values"),
        ({"split": (0.8, 0.0, 0.2)}, 0.9, "interval: needs a validation part to calibrate on"),
    ],
)
def test_intervals_that_cannot_be_calibrated_are_refused_in_one_line(long_run, changes, level, message):
    # Another split takes a series of its own (the same file here, read as another series).
    run = long_run.with_series(data=long_run.config.data, **changes) if changes else long_run
    with pytest.raises(ValueError) as caught:
        run.forecast(2, interval=level)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_cli_prints_bounds_and_coverage_and_names_the_flag(long_run, cli, tmp_path):
    status, stdout, stderr = cli("forecast", "--model", str(long_run.directory.path), "--horizon", "2",
                                 "--interval", "0.9")  # fmt: skip
    assert status == 0, stderr
    low, high = long_run.forecast(2, interval=0.9).lower[0], long_run.forecast(2, interval=0.9).upper[0]
    assert f"[{low:.6g}, {high:.6g}]" in stdout
    status, stdout, _ = cli("evaluate", "--model", str(long_run.directory.path), "--interval", "0.9")
    assert (
        status == 0
        and "90% intervals (split conformal, validation part): test coverage by horizon 1: " in stdout
    )
    status, _, stderr = cli("forecast", "--model", str(long_run.directory.path), "--horizon", "2",
                            "--interval", "2")  # fmt: skip
    assert status == 2 and stderr.strip().endswith("argument --interval: expected a coverage level between 0 "
                                                   "and 1 such as 0.9, got 2.0")  # fmt: skip
