"""Several series in one long table (`--id`): one global model, each series scaled, scored and
forecast on its own, and every bad table one line."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import call_main

from tf_sine.config import Config, ConfigError
from tf_sine.errors import DataError

# Three weekly-seasonal daily series at scales a hundredfold apart, of different lengths.
SHAPES = (("north", 100.0, 20.0, 300), ("south", 10.0, 2.0, 260), ("east", 1000.0, 150.0, 280))


def long_table(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for key, level, amplitude, n in SHAPES:
        dates = pd.date_range("2023-01-02", periods=n, freq="D")
        values = level + amplitude * np.sin(2 * np.pi * np.arange(n) / 7) + rng.normal(0, 0.1 * amplitude, n)
        parts.append(pd.DataFrame({"store": key, "date": dates, "sales": values.round(4)}))
    return pd.concat(parts, ignore_index=True)


def write_long(path, frame: pd.DataFrame):
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("panel")
    path = write_long(folder / "stores.csv", long_table())
    status, stdout, stderr = call_main("train", "--data", str(path), "--id", "store", "--layout", "sequence",
                                       "--units", "8", "--steps", "300", "--run-dir", str(folder / "run"),
                                       "--quiet")  # fmt: skip
    assert status == 0, stderr
    return path, folder / "run", stdout


def test_one_model_learns_every_series_each_scaled_on_its_own(trained):
    path, run_dir, stdout = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["series"]) == {"north", "south", "east"}
    for key, scores in metrics["series"].items():
        assert scores["mase"] < 0.5 * scores["baseline_metrics"]["persistence"]["mase"], key
    assert "by series (3):" in stdout and "seasonal naive (each series' period)" in stdout
    # Each series' scaling is its own training part's mean and spread (70% of its values).
    scaling = json.loads((run_dir / "scaling.json").read_text())["series"]
    frame = pd.read_csv(path)
    for key, rows in frame.groupby("store"):
        training = rows["sales"].to_numpy()[: round(0.7 * len(rows))]
        assert scaling[key]["offset"] == pytest.approx(training.mean())
        assert scaling[key]["factor"] == pytest.approx(training.std())


def test_pooled_scores_are_every_series_together(trained):
    from tf_sine.evaluation import predict_levels
    from tf_sine.trained import open_run

    _, run_dir, _ = trained
    run = open_run(run_dir)
    metrics = run.evaluate()
    errors, scaled = [], []
    for key in run.ids:
        one = run.select(key)
        data = one.dataset
        error = (
            predict_levels(one.model, data, one.transform, data.test_targets) - data.levels[data.test_targets]
        )
        errors.append(error)
        scaled.append(np.abs(error) / metrics["series"][key]["mase_scale"])
        assert metrics["series"][key]["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)))
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
    assert metrics["mase"] == pytest.approx(np.mean(np.concatenate(scaled)))


def test_the_windows_of_every_series_train_together():
    from tf_sine.panel import load_panel, read_panel

    frame = long_table()
    config = Config(data="<pandas>", id_column="store", layout="sequence", timesteps=7, difference=False)
    panel = load_panel(config, read_panel(frame, "store", None, "none", ()))
    transforms = panel.fit_transforms(config)
    x, y = panel.windows(transforms, "train", 7, "sequence")
    counts = [len(data.train_targets) for data in panel.datasets.values()]
    assert len(x) == len(y) == sum(counts)
    start = 0
    for count in counts:  # every series in its own scaled space: mean 0, spread 1 on its training part
        assert abs(float(y[start : start + count].mean())) < 0.1
        assert float(y[start : start + count].std()) == pytest.approx(1.0, abs=0.1)
        start += count


def test_forecasts_of_every_series_or_one_and_the_model_file_agrees(trained, tmp_path):
    _, run_dir, _ = trained
    status, stdout, stderr = call_main("forecast", "--model", str(run_dir), "--horizon", "4", "--interval", "0.9",
                                       "--out", str(tmp_path / "all"))  # fmt: skip
    assert status == 0, stderr
    assert stdout.count("forecast of 4 steps after") == 3 and "of series 'south'" in stdout
    table = pd.read_csv(tmp_path / "all" / "forecast.csv")
    assert list(table.columns[:5]) == ["store", "time", "forecast", "lower", "upper"]
    assert table.groupby("store").size().to_dict() == {"north": 4, "south": 4, "east": 4}
    for model in (run_dir, run_dir / "model.keras"):
        status, _, stderr = call_main("forecast", "--model", str(model), "--horizon", "4", "--interval", "0.9",
                                      "--series", "south", "--out", str(tmp_path / model.name))  # fmt: skip
        assert status == 0, stderr
        one = pd.read_csv(tmp_path / model.name / "forecast.csv")
        south = table[table["store"] == "south"].drop(columns="store").reset_index(drop=True)
        pd.testing.assert_frame_equal(one, south)


def test_pandas_in_and_out_and_the_run_keeps_its_long_table(tmp_path):
    from tf_sine.pipeline import run_experiment
    from tf_sine.trained import open_run

    config = Config(id_column="store", layout="sequence", units=4, steps=60, checkpoint_every=60)
    run_experiment(config, tmp_path / "run", progress=False, series=long_table())
    assert (tmp_path / "run" / "series.csv").read_text().startswith("store,date,sales\n")
    run = open_run(tmp_path / "run")
    assert sorted(run.ids) == ["east", "north", "south"]
    frame = run.forecast(3).to_frame()
    assert list(frame.columns[:3]) == ["store", "time", "forecast"] and len(frame) == 9
    assert frame[frame["store"] == "north"]["time"].iloc[0] == pd.Timestamp("2023-10-29")
    again = run.with_series(long_table()).select("east").forecast(3).values
    np.testing.assert_allclose(again, frame[frame["store"] == "east"]["forecast"].to_numpy())


def test_one_series_exports_with_its_own_scaling(trained, tmp_path):
    import tensorflow as tf

    from tf_sine.trained import open_run

    _, run_dir, _ = trained
    status, _, stderr = call_main("export", "--model", str(run_dir), "--out", str(tmp_path / "e"))
    assert status == 2 and "--series: expected one of this model's 3 series for export" in stderr
    assert stderr.count("\n") == 1
    status, _, stderr = call_main(
        "export", "--model", str(run_dir), "--out", str(tmp_path / "e"), "--series", "east"
    )
    assert status == 0, stderr
    east = open_run(run_dir).select("east")
    values = east.dataset.levels[-10:][None].astype(np.float32)
    served = tf.saved_model.load(str(tmp_path / "e" / "saved_model")).signatures["next_value"]
    got = served(values=tf.constant(values))["next_value"].numpy()
    np.testing.assert_allclose(got, east.forecast(1).values, rtol=1e-4)
    assert json.loads((tmp_path / "e" / "export.json").read_text())["series"] == "east"


def test_a_reopened_run_keeps_the_table_order_and_prints_each_series_by_horizon(trained):
    from tf_sine.trained import open_run

    _, run_dir, _ = trained
    assert open_run(run_dir).ids == ["north", "south", "east"]  # as in the table, not sorted
    status, stdout, stderr = call_main(
        "evaluate", "--model", str(run_dir), "--horizon", "3", "--interval", "0.9"
    )
    assert status == 0, stderr
    assert stdout.count("RMSE by horizon on the") == 3 and stdout.count("90% intervals") == 3
    assert stdout.index("series 'north':") < stdout.index("series 'south':") < stdout.index("series 'east':")


def test_a_panel_forecast_past_one_series_covariates_names_that_series(tmp_path):
    from tf_sine.pipeline import run_experiment
    from tf_sine.trained import open_run

    parts = []
    for key, rows in long_table().groupby("store", sort=False):
        future = 1 if key == "east" else 3
        dates = pd.date_range(rows["date"].iloc[-1], periods=future + 1, freq="D")[1:]
        rows = pd.concat([rows, pd.DataFrame({"store": key, "date": dates, "sales": np.nan})])
        parts.append(rows.assign(price=np.linspace(1.0, 2.0, len(rows))))
    config = Config(id_column="store", layout="sequence", covariates=("price",), units=3, steps=20,
                    checkpoint_every=20)  # fmt: skip
    run_experiment(config, tmp_path / "run", progress=False, series=pd.concat(parts, ignore_index=True))
    run = open_run(tmp_path / "run")
    assert len(run.forecast(1).to_frame()) == 3
    with pytest.raises(
        DataError, match=r"^horizon: in series 'east', expected a value of covariate 'price' at"
    ):
        run.forecast(3)


def test_messages_name_what_was_given_in_words(trained, tmp_path):
    from tf_sine.panel import load_panel

    path, run_dir, _ = trained
    np.save(tmp_path / "v.npy", np.arange(50.0))
    status, _, stderr = call_main("train", "--data", str(tmp_path / "v.npy"), "--id", "store", "--steps", "5",
                                  "--run-dir", str(tmp_path / "r"), "--quiet")  # fmt: skip
    assert status == 2 and "argument --id: applies to CSV tables only, got 'store'" in stderr, stderr
    status, _, stderr = call_main("backtest", "--data", str(path), "--id", "store", "--layout", "sequence",
                                  "--folds", "2", "--horizon", "3", "--out", str(tmp_path / "bt"))  # fmt: skip
    assert status == 2 and "series ('north', 'south', 'east'), got none" in stderr, stderr
    status, _, stderr = call_main("backtest", "--model", str(run_dir), "--series", "north", "--preset", "tiny",
                                  "--folds", "2", "--horizon", "3")  # fmt: skip
    assert status == 2 and "argument --preset: applies to a backtest without --model" in stderr, stderr
    status, _, stderr = call_main("train", "--data", str(path), "--id", "store", "--layout", "sequence",
                                  "--covariates", "price,", "--run-dir", str(tmp_path / "r"))  # fmt: skip
    assert status == 2 and "--covariates: expected names such as 'price,holiday', got an empty name in 'price,'" \
        in stderr, stderr  # fmt: skip
    daily = long_table().query("store != 'east'")
    monthly = pd.DataFrame({"store": "east", "date": pd.date_range("2000-01-01", periods=60, freq="MS"),
                            "sales": np.arange(60.0)})  # fmt: skip
    config = Config(id_column="store", layout="sequence", calendar=("auto",))
    with pytest.raises(DataError, match=r"^calendar: expected the same cycles for every series, got weekday,yearday "
                       r"for series 'north' and month for series 'east'"):  # fmt: skip
        load_panel(config, pd.concat([daily, monthly], ignore_index=True))


@pytest.mark.parametrize(
    ("edit", "flags", "message"),
    [
        (None, ("--id", "shop"), r"--id: expected a column of stores.csv among 'store', 'date', 'sales', got 'shop'"),
        ((5, "store", ""), (), r"--id: expected a series id in column 'store', got an empty cell on line 7"),
        ((301, "date", "2023-01-01"), (), r"--data: in series 'south', expected increasing dates in column 'date' "
                                          r"of stores.csv, got '2023-01-01' on line 303 after '2023-01-02' on line 302"),
        ((400, "sales", "n/a"), (), r"--data: in series 'south', expected numbers in column 'sales', got 'n/a' on "
                                    r"line 402"),
    ],
)  # fmt: skip
def test_a_bad_long_table_is_one_line_naming_the_series(tmp_path, edit, flags, message):
    frame = long_table().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")).astype(object)
    if edit is not None:
        row, column, cell = edit
        frame.iloc[row, frame.columns.get_loc(column)] = cell
    path = tmp_path / "stores.csv"
    frame.to_csv(path, index=False)
    flags = flags or ("--id", "store")
    status, _, stderr = call_main("train", "--data", str(path), *flags, "--layout", "sequence", "--steps", "5",
                                  "--run-dir", str(tmp_path / "run"), "--quiet")  # fmt: skip
    assert status == 2 and stderr.count("\n") == 1, stderr
    import re

    assert re.search(message, stderr), stderr
    assert not (tmp_path / "run").exists()


def test_a_series_must_be_named_where_one_is_needed(trained):
    from tf_sine.backtest import backtest
    from tf_sine.trained import open_run

    _, run_dir, _ = trained
    run = open_run(run_dir)
    with pytest.raises(ConfigError, match=r"series_id: expected one of the table's 3 series .* got 'west'"):
        run.select("west")
    with pytest.raises(ConfigError, match="series_id: expected one of this model's 3 series for a backtest"):
        backtest(run, folds=2, horizon=3)
    assert len(backtest(run.select("north"), folds=2, horizon=3).folds) == 2
    with pytest.raises(ConfigError, match="series_id: applies to a model of several series"):
        run.select("north").select("north")
    with pytest.raises(ConfigError, match="series_id: applies to a table of several series"):
        Config(data="x.csv", series_id="north")
    with pytest.raises(DataError, match="id: expected a column of the DataFrame"):
        from tf_sine.panel import read_panel

        read_panel(long_table(), "shop", None, "none", ())


def test_a_backtest_of_one_series_of_a_long_table_trains_on_its_history(trained, tmp_path):
    path, _, _ = trained
    out = tmp_path / "bt"
    status, _, stderr = call_main("backtest", "--data", str(path), "--id", "store", "--series", "south", "--layout",
                                  "sequence", "--units", "3", "--steps", "20", "--folds", "2", "--horizon", "3",
                                  "--out", str(out))  # fmt: skip
    assert status == 0, stderr
    history = (out / "folds" / "fold-1.csv").read_text().splitlines()
    south = pd.read_csv(path).query("store == 'south'")
    assert history[0] == "time,sales" and history[1].startswith(south["date"].iloc[0])


def test_a_table_of_other_series_or_ambiguous_ids_is_one_line(trained):
    from tf_sine.panel import read_panel
    from tf_sine.trained import open_run

    _, run_dir, _ = trained
    frame = long_table().replace({"store": {"east": "west"}})
    with pytest.raises(
        DataError, match=r"data: expected the series the model was trained on .* differs in 'east', 'west'"
    ):
        open_run(run_dir).with_series(frame).evaluate()
    mixed = long_table().astype({"store": object})
    mixed.loc[mixed["store"] == "east", "store"] = 1
    mixed.loc[mixed["store"] == "south", "store"] = "1"
    with pytest.raises(DataError, match="id: expected ids that differ as text too"):
        read_panel(mixed, "store", None, "none", ())


def test_one_series_is_read_alone(tmp_path):
    from tf_sine.panel import read_panel

    frame = long_table().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")).astype(object)
    frame.iloc[3, frame.columns.get_loc("sales")] = "n/a"  # in series 'north'
    path = tmp_path / "stores.csv"
    frame.to_csv(path, index=False)
    for source in (path, long_table()):
        assert list(read_panel(source, "store", None, "none", (), only="south")) == ["south"]
        with pytest.raises(
            ConfigError, match=r"series_id: expected one of the table's 3 series .* got 'west'"
        ):
            read_panel(source, "store", None, "none", (), only="west")
    with pytest.raises(DataError, match="in series 'north', expected numbers in column 'sales'"):
        read_panel(path, "store", None, "none", ())
    with pytest.raises(DataError, match=r"^data: expected rows of series in the DataFrame, got none"):
        read_panel(long_table().iloc[:0], "store", None, "none", ())


def test_one_series_of_a_long_dataframe_trains_alone(tmp_path):
    from tf_sine.pipeline import run_experiment
    from tf_sine.trained import open_run

    config = Config(
        id_column="store", series_id="south", layout="sequence", units=3, steps=10, checkpoint_every=10
    )
    run_experiment(config, tmp_path / "run", progress=False, series=long_table())
    south = long_table().query("store == 'south'")
    np.testing.assert_allclose(open_run(tmp_path / "run").dataset.levels, south["sales"].to_numpy())
