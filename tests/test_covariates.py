"""Covariates and calendar features: read, scaled, windowed at the target's time, trained on,
forecast with their future rows, exported, and refused in one line when wrong."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import call_main

from tf_sine.config import CALENDARS, Config, ConfigError
from tf_sine.errors import DataError

FUTURE = 12  # rows after the last value, where only the covariates are known


def driven_table(n: int = 700, seed: int = 0) -> pd.DataFrame:
    """Daily sales that follow the day's price and promotion (the target's own time), plus noise
    of standard deviation 0.2: the price is white noise, so the past values cannot foretell it."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2022-01-03", periods=n + FUTURE, freq="D")
    price = rng.normal(5.0, 1.0, n + FUTURE).round(3)
    promo = (rng.random(n + FUTURE) < 0.2).astype(float)
    sales = 20 - 2.0 * price + 4.0 * promo + rng.normal(0, 0.2, n + FUTURE)
    sales[n:] = np.nan
    return pd.DataFrame({"sales": sales.round(4), "price": price, "promo": promo}, index=dates)


def write_table(path, frame: pd.DataFrame):
    frame.rename_axis("date").to_csv(path, na_rep="", float_format="%.10g")
    return path


@pytest.fixture(scope="module")
def driven_run(tmp_path_factory):
    """A small model trained from pandas with two covariates and the calendar."""
    from tf_sine.pipeline import run_experiment
    from tf_sine.trained import open_run

    folder = tmp_path_factory.mktemp("covariates")
    config = Config(layout="sequence", units=8, steps=300, checkpoint_every=300, covariates=("price", "promo"),
                    calendar=("auto",))  # fmt: skip
    result = run_experiment(config, folder / "run", progress=False, series=driven_table())
    return result, open_run(folder / "run")


def test_features_follow_the_covariates_and_calendar_and_bad_names_are_refused():
    config = Config(data="t.csv", layout="sequence", covariates=("price", "promo"), calendar=("month",))
    assert config.features == 1 + 2 + 2
    assert Config.from_dict(config.to_dict()) == config
    assert Config(data="t.csv", layout="sequence", calendar="weekday,month").features == 5
    for changes, message in [
        ({"covariates": ("price",)}, r"layout: expected 'sequence' with `covariates`"),
        ({"layout": "sequence", "covariates": ("a", "a")}, r"covariates: expected each name once, got 'a'"),
        ({"layout": "sequence", "calendar": ("auto", "month")}, r"calendar: expected 'auto' alone"),
        ({"layout": "sequence", "calendar": ("season",)}, r"calendar: expected one of 'auto', 'hour'"),
        ({"layout": "sequence", "covariates": ("a",), "features": 3}, r"features: expected 2 \(the value, 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Config(data="t.csv", **changes)
    from tf_sine.dataset import load_dataset

    with pytest.raises(ConfigError, match="covariates: applies to a series of your own"):
        load_dataset(Config(layout="sequence", covariates=("price",)))


def test_calendar_features_are_the_phase_of_each_date_in_its_cycle():
    from tf_sine.covariates import calendar_features, calendar_names, resolve_calendar

    times = pd.DatetimeIndex(["2024-01-01 06:00", "2024-04-01 18:00", "2024-07-04 00:00"])
    cycles = ("hour", "weekday", "yearday", "month")
    assert set(cycles) == set(CALENDARS) - {"auto"}
    features = calendar_features(times, cycles)
    assert features.shape == (3, 8) and calendar_names(cycles)[:2] == ("hour_sin", "hour_cos")
    # Independent phases: 6 h is a quarter day; Monday is day 0; 4 July 2024 is day 185 of a leap year.
    phases = np.array([[0.25, 0, 0, 0], [0.75, 0, 91 / 365.25, 3 / 12], [0.0, 3 / 7, 185 / 365.25, 6 / 12]])
    expected = np.stack([f(2 * np.pi * phases[:, k]) for k in range(4) for f in (np.sin, np.cos)], axis=1)
    np.testing.assert_allclose(features, expected, atol=1e-12)
    daily = pd.date_range("2024-01-01", periods=10, freq="D")
    assert resolve_calendar(("auto",), daily) == ("weekday", "yearday")
    assert resolve_calendar(("auto",), pd.date_range("2024-01-01", periods=10, freq="h")) == (
        "hour",
        "weekday",
    )
    assert resolve_calendar(("auto",), pd.date_range("2024-01-01", periods=10, freq="QS")) == ("month",)
    assert resolve_calendar(("month",), daily) == ("month",)
    with pytest.raises(
        DataError, match=r"calendar: expected a series with dates .* got numbers such as years"
    ):
        resolve_calendar(("auto",), [2001, 2002])
    with pytest.raises(DataError, match="calendar: expected dates less than 300 days apart"):
        resolve_calendar(("auto",), pd.date_range("2000-01-01", periods=5, freq="YS"))


def test_a_table_reads_its_covariates_and_future_rows_and_writes_them_back(tmp_path):
    from tf_sine.series import read_series_file

    frame = driven_table(n=40)
    path = write_table(tmp_path / "t.csv", frame)
    series = read_series_file(path, "sales", covariates=("price", "promo"))
    assert len(series.values) == 40 and series.covariates.shape == (40 + FUTURE, 2)
    np.testing.assert_allclose(series.covariates, frame[["price", "promo"]].to_numpy())
    assert series.future_dates == list(frame.index[40:])
    copy = tmp_path / "copy.csv"
    copy.write_text(series.csv_text())
    again = read_series_file(copy, covariates=("price", "promo"))  # the value column found beside them
    np.testing.assert_array_equal(again.values, series.values)
    np.testing.assert_array_equal(again.covariates, series.covariates)
    assert again.future_dates == series.future_dates and list(again.dates) == list(series.dates)


@pytest.mark.parametrize(
    ("edit", "covariates", "message"),
    [
        (None, ("cost",), r"covariates: expected columns of t.csv among 'price', 'promo', got 'cost'"),
        (None, ("sales",), r"covariates: expected columns of t.csv among .* got 'sales', its value column"),
        (None, ("date",), r"got 'date', its time column"),
        (
            (5, "price", ""),
            ("price",),
            r"expected a number in column 'price', got an empty cell on line 7 of t.csv",
        ),
        (
            (45, "promo", "yes"),
            ("promo",),
            r"expected a number in column 'promo', got 'yes' on line 47 of t.csv",
        ),
    ],
)
def test_a_bad_covariate_column_is_one_line(tmp_path, edit, covariates, message):
    from tf_sine.series import read_series_file

    frame = driven_table(n=40).astype(object)
    if edit is not None:
        row, column, cell = edit
        frame.iloc[row, frame.columns.get_loc(column)] = cell
    path = write_table(tmp_path / "t.csv", frame)
    with pytest.raises(DataError, match=message):
        read_series_file(path, "sales", covariates=covariates)


def test_future_rows_that_skip_a_date_are_refused(tmp_path):
    from tf_sine.series import from_pandas, read_series_file

    frame = driven_table(n=40)
    frame = frame.drop(index=frame.index[45])  # a future row
    path = write_table(tmp_path / "t.csv", frame)
    with pytest.raises(DataError, match=r"^data: expected a row for every date at the series' frequency \(D\), got "
                       r"none for 2022-02-17 after line 46 of t.csv \(a table with covariates needs every row"):  # fmt: skip
        read_series_file(path, "sales", covariates=("price",))
    with pytest.raises(
        DataError, match=r"^data: expected a row for every date .* none for 2022-02-17 after 2022-02-16"
    ):
        from_pandas(frame, "sales", covariates=("price",))


def test_pandas_covariates_are_checked_like_a_file():
    from tf_sine.series import from_pandas

    frame = driven_table(n=30)
    series = from_pandas(frame, "sales", covariates=("price",))
    assert series.covariates.shape == (30 + FUTURE, 1) and len(series.values) == 30
    with pytest.raises(
        DataError, match="covariates: expected a DataFrame with the columns price, got a Series"
    ):
        from_pandas(frame["sales"], covariates=("price",))
    broken = frame.copy()
    broken.iloc[3, 1] = np.nan
    with pytest.raises(
        DataError, match=r"covariates: expected a number in column 'price' at 2022-01-06 .*got nan"
    ):
        from_pandas(broken, "sales", covariates=("price",))


def test_each_window_step_carries_the_scaled_extras_of_the_time_after_it():
    from tf_sine.dataset import Transform, load_dataset
    from tf_sine.series import from_pandas

    frame = driven_table(n=60)
    config = Config(data="<pandas>", layout="sequence", timesteps=5, covariates=("price", "promo"),
                    calendar=("weekday",))  # fmt: skip
    data = load_dataset(config, from_pandas(frame, "sales", covariates=config.covariates))
    transform = Transform.for_config(data, config)
    training = frame.iloc[: data.train_end]
    assert transform.extra_offsets[:2] == pytest.approx(training[["price", "promo"]].mean().tolist())
    assert transform.extra_factors[:2] == pytest.approx(training[["price", "promo"]].std(ddof=0).tolist())
    x, y = data.windows(transform, data.test_targets, 5, "sequence")
    assert x.shape == (len(data.test_targets), 5, 1 + 2 + 2)
    sales = frame["sales"].to_numpy()
    np.testing.assert_allclose(
        y[:, 0], (sales[data.test_targets] - transform.offset) / transform.factor, rtol=1e-6
    )
    t = int(data.test_targets[3])
    steps = np.arange(t - 5, t)
    price = (frame["price"].to_numpy()[steps + 1] - transform.extra_offsets[0]) / transform.extra_factors[0]
    np.testing.assert_allclose(x[3, :, 1], price, rtol=1e-6)  # the last step: the target's own price
    weekday = 2 * np.pi * frame.index[steps + 1].day_of_week / 7
    sine = (np.sin(weekday) - transform.extra_offsets[2]) / transform.extra_factors[2]
    np.testing.assert_allclose(x[3, :, 3], sine, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[3, :, 0], (frame["sales"].to_numpy()[steps] - transform.offset) / transform.factor,
                               rtol=1e-6)  # fmt: skip


def test_a_model_with_covariates_learns_what_the_values_alone_cannot(driven_run):
    result, run = driven_run
    metrics = result.metrics
    # The noise is 0.2 and the price alone moves the sales by 2 per unit: only its covariates explain them.
    assert metrics["rmse"] < 0.3 * metrics["baselines"]["persistence"], metrics
    assert metrics["rmse"] < 0.6
    assert run.config.calendar == ("weekday", "yearday") and run.config.features == 7  # 'auto', resolved
    assert run.dataset.extra_names == ("price", "promo", "weekday_sin", "weekday_cos", "yearday_sin",
                                       "yearday_cos")  # fmt: skip


def test_a_forecast_reads_the_future_rows_and_stops_where_they_end(driven_run):
    _, run = driven_run
    frame = driven_table()
    forecast = run.forecast(FUTURE, interval=0.9)
    assert forecast.times[1:] == list(frame.index[-FUTURE:])
    # The future's sales, had they been drawn: the model follows the known prices.
    rng_truth = 20 - 2.0 * frame["price"].to_numpy()[-FUTURE:] + 4.0 * frame["promo"].to_numpy()[-FUTURE:]
    assert np.sqrt(np.mean((forecast.values - rng_truth) ** 2)) < 1.0
    assert np.all(forecast.lower < forecast.values) and np.all(forecast.values < forecast.upper)
    with pytest.raises(DataError, match=r"horizon: expected a value of covariate 'price' at 2023-12-16 for this "
                       r"horizon, got none \(the table's rows end at 2023-12-15\)"):  # fmt: skip
        run.forecast(FUTURE + 1)
    with pytest.raises(
        DataError, match="values: expected a model of the values alone, got one that also reads price"
    ):
        run.predict(np.ones(20))
    # The run kept its pandas table, future rows included: opened again, the same forecast.
    again = run.with_series(frame, column="sales")
    np.testing.assert_allclose(again.forecast(FUTURE).values, forecast.values, rtol=1e-6)


def test_the_export_takes_the_features_in_their_own_units(driven_run, tmp_path):
    import tensorflow as tf

    _, run = driven_run
    manifest = run.export(tmp_path / "export")
    assert manifest["signatures"]["next_value"]["inputs"] == {"values": [None, 10], "features": [None, 10, 6]}
    assert manifest["features"] == list(run.dataset.extra_names)
    data = run.dataset
    origin = int(data.test_targets[5]) - 1
    values = data.levels[origin - 9 : origin + 1][None].astype(np.float32)
    features = data.extras[origin - 8 : origin + 2][None].astype(np.float32)  # the times after each value
    served = tf.saved_model.load(str(tmp_path / "export" / "saved_model")).signatures["next_value"]
    got = served(values=tf.constant(values), features=tf.constant(features))["next_value"].numpy()
    expected = run.forecast(1, origin=origin).values
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_the_cli_trains_forecasts_and_backtests_a_table_with_covariates(tmp_path):
    path = write_table(tmp_path / "sales.csv", driven_table(n=300))
    run_dir = tmp_path / "run"
    status, stdout, stderr = call_main(
        "train", "--data", str(path), "--column", "sales", "--covariates", "price,promo", "--calendar", "weekday",
        "--layout", "sequence", "--units", "6", "--steps", "60", "--run-dir", str(run_dir), "--quiet",
    )  # fmt: skip
    assert status == 0, stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["covariates"] == ["price", "promo"] and config["calendar"] == ["weekday"]
    status, stdout, stderr = call_main("forecast", "--model", str(run_dir), "--horizon", "13")
    assert status == 2 and stderr.count("\n") == 1 and not stdout
    assert "--horizon: expected a value of covariate 'price' at 2022-11-11 for this horizon" in stderr, stderr
    for model, out in ((run_dir, "f1"), (run_dir / "model.keras", "f2")):
        status, _, stderr = call_main("forecast", "--model", str(model), "--horizon", "12", "--data", str(path),
                                      "--out", str(tmp_path / out))  # fmt: skip
        assert status == 0, stderr
    forecast = (tmp_path / "f1" / "forecast.csv").read_text()
    assert forecast == (tmp_path / "f2" / "forecast.csv").read_text()  # the model file opens its run
    assert forecast.splitlines()[-1].startswith("2022-11-10,")  # the last of the table's future rows
    status, _, stderr = call_main(
        "backtest",
        "--model",
        str(run_dir),
        "--folds",
        "2",
        "--horizon",
        "3",
        "--refit",
        "--out",
        str(tmp_path / "b"),
    )
    assert status == 0, stderr
    history = (tmp_path / "b" / "folds" / "fold-1.csv").read_text().splitlines()
    assert history[0] == "time,sales,price,promo"  # each fold trains on its covariates too
    status, _, stderr = call_main("train", "--data", str(path), "--column", "sales", "--covariates", "cost", "--layout", "sequence",
                                  "--run-dir", str(tmp_path / "bad"), "--quiet")  # fmt: skip
    assert status == 2 and stderr.count("\n") == 1
    assert "--covariates: expected columns of sales.csv among 'price', 'promo', got 'cost'" in stderr
    assert not (tmp_path / "bad").exists()


def test_scores_by_horizon_need_no_future_rows(driven_run):
    _, run = driven_run
    frame = driven_table().iloc[:-FUTURE]  # no future rows: every test target is still known
    scores = run.with_series(frame, column="sales").evaluate(horizon=3)
    assert len(scores["rmse_by_horizon"]) == 3 and np.isfinite(scores["rmse_by_horizon"]).all()


def test_a_covariate_beyond_float32_once_scaled_is_named(driven_run):
    """Another table whose price the model would read as infinite: refused naming the column and
    row, not scored as NaN."""
    _, run = driven_run
    frame = driven_table().iloc[:-FUTURE]
    frame.iloc[40, frame.columns.get_loc("price")] = 1e39
    with pytest.raises(
        DataError, match=r"^data: expected values within float32's range .* got 1e\+39 in price at index 40"
    ):
        run.with_series(frame, column="sales").evaluate()
