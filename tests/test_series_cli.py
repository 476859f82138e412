"""A user's series through the CLI (in this process) and `open_run`: train, evaluate, forecast,
predict, export, and bad files."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import call_main, seasonal_series, write_seasonal_csv

from tf_sine.config import Config


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    """The default experiment on a 500-month seasonal series with a trend (auto differencing)."""
    folder = tmp_path_factory.mktemp("series")
    csv_path = write_seasonal_csv(folder / "sales.csv")
    run_dir = folder / "run"
    status, stdout, stderr = call_main("train", "--data", str(csv_path), "--run-dir", str(run_dir), "--quiet")
    assert status == 0, stderr
    return csv_path, run_dir, stdout


def test_training_on_a_csv_beats_persistence_at_horizon_one(series_run):
    _, run_dir, stdout = series_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["period"] == 12
    assert set(metrics["baselines"]) == {"persistence", "seasonal_naive", "mean"}
    assert metrics["rmse"] < metrics["baselines"]["persistence"]
    assert metrics["rmse"] < 1.0  # the noise is 0.5: in the series' units, not the scaled ones
    assert (
        f"baselines, same test targets: persistence RMSE {metrics['baselines']['persistence']:.6g}" in stdout
    )
    scaling = json.loads((run_dir / "scaling.json").read_text())
    assert scaling["difference"] is True and scaling["scale"] == "standard"  # the trend was found
    history = json.loads((run_dir / "history.json").read_text())
    assert history["val_step"][:2] == [100, 200] and len(history["val_loss"]) == len(history["val_step"])
    assert metrics["best_step"] in history["val_step"] and "kept the model of step" in stdout


def test_evaluate_with_a_horizon_scores_it_and_only_reads_the_run(series_run, cli):
    _, run_dir, _ = series_run
    before = {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()}
    status, stdout, stderr = cli("evaluate", "--model", str(run_dir), "--horizon", "6", "--json")
    assert status == 0, stderr
    scores = json.loads(stdout)
    assert len(scores["rmse_by_horizon"]) == 6 == len(scores["baselines_by_horizon"]["persistence"])
    assert scores["rmse_by_horizon"][0] < scores["baselines_by_horizon"]["persistence"][0]
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert "rmse_by_horizon" not in saved and saved["rmse"] == scores["rmse"]  # training's record, kept
    assert {path.name: path.stat().st_mtime_ns for path in run_dir.iterdir()} == before
    _, table, _ = cli("evaluate", "--model", str(run_dir), "--horizon", "3")
    assert "RMSE by horizon on the 75 test targets" in table and "seasonal_naive" in table


def test_forecast_continues_the_dates_and_writes_csv_and_plot(series_run, tmp_path, cli):
    _, run_dir, _ = series_run
    status, stdout, stderr = cli(
        "forecast", "--model", str(run_dir), "--horizon", "12", "--out", str(tmp_path)
    )
    assert status == 0, stderr
    rows = list(csv.DictReader((tmp_path / "forecast.csv").open()))
    # 500 months from 1980-01 end in 2021-08.
    assert [row["time"] for row in rows[:2]] == ["2021-09-01", "2021-10-01"] and len(rows) == 12
    assert all(row["truth"] == "" for row in rows)
    values = np.array([float(row["forecast"]) for row in rows])
    assert np.all(np.abs(values - seasonal_series(512)[500:]) < 3)  # it continues the cycle and trend
    assert (tmp_path / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert "RMSE by horizon on the 75 test targets" in stdout


def test_forecast_from_the_test_part_is_scored_against_the_truth(series_run, tmp_path, cli):
    csv_path, run_dir, _ = series_run
    status, stdout, stderr = cli(
        "forecast", "--model", str(run_dir), "--horizon", "5", "--origin", "test", "--out", str(tmp_path)
    )
    assert status == 0, stderr
    rows = list(csv.DictReader((tmp_path / "forecast.csv").open()))
    first_test = 425  # round(0.7 * 500) + round(0.15 * 500)
    sales = [line.split(",")[1] for line in csv_path.read_text().splitlines()[1:]]
    assert [float(row["truth"]) for row in rows] == [float(v) for v in sales[first_test : first_test + 5]]
    assert "against the 5 known values: model RMSE" in stdout and "persistence RMSE" in stdout


def _answers(cli, command: str, model, out, series_file) -> object:
    """What `command` answers for `--model model`, as something comparable."""
    if command == "evaluate":
        status, stdout, _ = cli("evaluate", "--model", str(model), "--horizon", "3", "--json")
        assert status == 0
        return json.loads(stdout)
    if command == "predict":
        status, stdout, _ = cli("predict", "--model", str(model), "--input", str(series_file))
        assert status == 0
        return stdout
    if command == "forecast":
        assert cli("forecast", "--model", str(model), "--horizon", "4", "--out", str(out))[0] == 0
        return (out / "forecast.csv").read_text()
    import tensorflow as tf

    assert cli("export", "--model", str(model), "--out", str(out))[0] == 0
    length = json.loads((out / "export.json").read_text())["signatures"]["next_value"]["inputs"]["values"][1]
    values = tf.constant(seasonal_series(length)[np.newaxis], tf.float32)
    served = tf.saved_model.load(str(out / "saved_model")).signatures["next_value"](values=values)
    return served["next_value"].numpy().tolist()


@pytest.mark.parametrize("command", ["evaluate", "predict", "forecast", "export"])
def test_any_file_of_a_run_gives_the_runs_answers(series_run, tmp_path, cli, command):
    """`--model RUN/model.keras` (or any file of the run) is the run itself: its scaling and
    differencing included, not the identity."""
    _, run_dir, _ = series_run
    series_file = tmp_path / "in.txt"
    series_file.write_text("\n".join(f"{v:.6f}" for v in seasonal_series(40)))
    names = [run_dir, run_dir / "model.keras", run_dir / "metrics.json"]
    answers = [
        _answers(cli, command, name, tmp_path / f"out{i}", series_file) for i, name in enumerate(names)
    ]
    assert answers[1] == answers[0] and answers[2] == answers[0]


def test_a_checkpoint_of_a_run_is_its_own_model_with_the_runs_scaling(series_run):
    from tf_sine.trained import open_run

    _, run_dir, _ = series_run
    run = open_run(run_dir)
    (checkpoint, *_) = sorted((run_dir / "checkpoints").glob("step-*.keras"))
    opened = open_run(checkpoint)
    assert opened.model_path == checkpoint and opened.directory.path == run_dir
    assert opened.transform == run.transform and opened.config == run.config and run.transform.difference
    stray = run_dir.parent / "copy.keras"
    stray.write_bytes((run_dir / "model.keras").read_bytes())
    bare = open_run(stray)
    assert bare.directory is None and not bare.transform.difference
    assert bare.config == Config(timesteps=run.config.timesteps, layout=run.config.layout)  # the sine's


def test_predict_with_a_run_directory_answers_in_the_series_units(series_run, tmp_path, cli):
    _, run_dir, _ = series_run
    levels = seasonal_series(60)
    (tmp_path / "in.txt").write_text("\n".join(f"{v:.6f}" for v in levels))
    status, stdout, stderr = cli("predict", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"))
    assert status == 0, stderr
    predictions = np.array(stdout.split(), dtype=float)
    assert len(predictions) == 60 - 11 + 1  # one per full differenced window of 10
    assert np.sqrt(np.mean((predictions[:-1] - levels[11:]) ** 2)) < 1.0


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        (None, ["--column", "price"], "argument --column: expected one of 'month', 'sales'"),
        ("month,sales\n2020-01,1\n2020-02,oops\n2020-03,2\n", [],
         "argument --data: expected numbers in column 'sales', got 'oops' on line 3"),
        ("month,sales\n" + "".join(f"2020-{m:02d},{m}\n" for m in range(1, 13)), [],
         "argument --data: expected at least 17 values for one window of 10 steps (differenced)"),
        ("month,sales\n2020-02,1\n2020-01,2\n2020-03,3\n", [],
         "argument --data: expected increasing dates in column 'month'"),
        (None, ["--split", "0.5,0.6,0.1"], "argument --split: expected three fractions"),
        (None, ["--split", "a,b"], "argument --split: expected three fractions train,validation,test"),
        (None, ["--split", "0.8,0,0.2", "--patience", "3"], "argument --patience: needs a validation part"),
    ],
)  # fmt: skip
def test_bad_files_and_flags_exit_2_with_one_line(tmp_path, cli, text, flags, message):
    path = tmp_path / "f.csv"
    if text is None:
        write_seasonal_csv(path, n=100)
    else:
        path.write_text(text)
    run_dir = tmp_path / "run"
    status, _, stderr = cli("train", "--data", str(path), "--run-dir", str(run_dir), "--steps", "5", *flags)
    assert status == 2 and stderr.count("\n") == 1 and message in stderr, stderr
    assert not run_dir.exists()  # refused before anything was written


def test_a_trained_run_keeps_its_split_and_a_closed_pipe_is_no_error(tiny_run, tmp_path, cli):
    status, _, stderr = cli("evaluate", "--model", str(tiny_run.run.path), "--split", "0.5,0.1,0.4")
    assert status == 2 and "argument --split: applies to another series (--data)" in stderr, stderr
    np.save(tmp_path / "series.npy", np.sin(np.arange(1000) / 10))
    command = [sys.executable, "-m", "tf_sine", "predict", "--model", str(tiny_run.run.path),
               "--input", str(tmp_path / "series.npy")]  # fmt: skip
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # gone before the first line, as `| head` is after its lines
    _, stderr = reader.communicate(timeout=120)
    assert reader.returncode == 141 and b"Traceback" not in stderr and b"error" not in stderr, stderr


def test_missing_data_file_and_patience_without_data(tmp_path, cli):
    status, _, stderr = cli("train", "--data", str(tmp_path / "none.csv"), "--steps", "5")
    assert status == 2 and "argument --data: expected an existing .csv or .npy file" in stderr
    status, _, stderr = cli("train", "--patience", "2", "--steps", "5")
    assert status == 2 and "argument --patience: needs a validation part: a --data file" in stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--horizon", "0"], "argument --horizon: expected a positive integer, got 0"),
     (["--horizon", "3", "--origin", "soon"], "argument --origin: expected 'end', 'test' or a position, got 'soon'"),
     (["--horizon", "3", "--origin", "2"], "argument --origin: expected a position from 10 to 499, got 2")],
)  # fmt: skip
def test_bad_forecast_flags_exit_2_with_one_line(series_run, tmp_path, cli, flags, message):
    _, run_dir, _ = series_run
    status, _, stderr = cli("forecast", "--model", str(run_dir), "--out", str(tmp_path), *flags)
    assert status == 2 and stderr.count("\n") == 1 and message in stderr, stderr
    assert not (tmp_path / "forecast.csv").exists()


def test_python_reproduces_the_forecast_command(series_run, tmp_path, cli):
    """`open_run(...).forecast(...)` is what `tf-sine forecast` writes, byte for byte."""
    from tf_sine.trained import open_run

    _, run_dir, _ = series_run
    status, stdout, _ = cli("forecast", "--model", str(run_dir), "--horizon", "6", "--origin", "test",
                            "--out", str(tmp_path / "cli"))  # fmt: skip
    assert status == 0
    forecast = open_run(run_dir).forecast(6, origin="test")
    written = forecast.save(tmp_path / "python")
    assert [path.name for path in written] == ["forecast.csv", "forecast.png"]
    assert (tmp_path / "python/forecast.csv").read_bytes() == (tmp_path / "cli/forecast.csv").read_bytes()
    errors = forecast.errors()
    assert set(errors) == {"model", "persistence", "seasonal_naive", "mean"}
    assert f"model RMSE {errors['model']:.6g}" in stdout
    truth = forecast.truth
    assert errors["persistence"] == pytest.approx(np.sqrt(np.mean((truth - forecast.history[-1]) ** 2)))
    assert forecast.times[0] == forecast.history_times[-1] and len(forecast.times) == 7


def test_python_reproduces_evaluate_and_predict(series_run, tmp_path, cli):
    from tf_sine.trained import open_run

    _, run_dir, _ = series_run
    run = open_run(run_dir)
    status, stdout, _ = cli("evaluate", "--model", str(run_dir), "--horizon", "2", "--json")
    assert status == 0 and json.loads(stdout) == json.loads(json.dumps(run.evaluate(horizon=2)))
    levels = seasonal_series(30)
    (tmp_path / "in.txt").write_text(" ".join(f"{v:.6f}" for v in levels))
    status, stdout, _ = cli("predict", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"),
                            "--output", str(tmp_path / "out.txt"))  # fmt: skip
    assert status == 0 and stdout == ""
    written = np.loadtxt(tmp_path / "out.txt")
    expected = run.predict(np.round(levels, 6))
    assert written.shape == (30 - 11 + 1,) and np.allclose(written, expected, rtol=1e-8)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--output", "{tmp}/missing/out.txt"], "argument --output: expected a file in an existing directory, got in a missing directory"),
     (["--output", "{tmp}"], "argument --output: expected a file in an existing directory, got a directory"),
     (["--input", "{tmp}/none.txt"], "argument --input: expected an existing file, got"),
     (["--input", ""], "argument --input: expected a file path, got an empty string"),
     (["--output", ""], "argument --output: expected a file path, got an empty string")],
)  # fmt: skip
def test_predict_refuses_a_missing_or_directory_path_in_one_line(series_run, tmp_path, cli, flags, message):
    _, run_dir, _ = series_run
    (tmp_path / "in.txt").write_text("1 2 3 4 5 6 7 8 9 10 11 12")
    argv = ["predict", "--model", str(run_dir), "--input", str(tmp_path / "in.txt")]
    status, _, stderr = cli(*argv, *[flag.format(tmp=tmp_path) for flag in flags])
    assert status == 2 and stderr.count("\n") == 1 and message in stderr, stderr


def test_a_series_with_gaps_is_filled_reported_and_never_scored(tmp_path, cli):
    path = write_seasonal_csv(tmp_path / "sales.csv", n=120)
    lines = path.read_text().splitlines()
    for position in (30, 103, 104):  # one in training, two in the test part (102..119)
        lines[position + 1] = lines[position + 1].split(",")[0] + ","
    path.write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    flags = ["--data", str(path), "--preset", "tiny", "--run-dir", str(run_dir), "--quiet"]
    status, _, stderr = cli("train", *flags)
    assert (
        status == 2
        and "argument --data: expected a number in column 'sales', got an empty cell on line 32" in stderr
    )
    assert "(3 empty in all; --fill can fill them: 'interpolate', 'ffill')" in stderr and not run_dir.exists()
    status, stdout, stderr = cli("train", *flags, "--fill", "interpolate")
    assert status == 0, stderr
    assert (
        "3 filled values of the series are never scored as truth" in stdout and "scale-free: MASE" in stdout
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["filled"] == 3 and metrics["baseline_metrics"]["persistence"]["mase"] > 0
    assert (
        cli(
            "forecast", "--model", str(run_dir), "--horizon", "4", "--origin", "test", "--out", str(tmp_path)
        )[0]
        == 0
    )
    truth = [row["truth"] for row in csv.DictReader((tmp_path / "forecast.csv").open())]
    assert truth[0] and truth[1:3] == ["", ""] and truth[3]  # positions 102..105: the gaps are not truth


def test_pandas_in_and_out_give_the_files_answers(series_run):
    import pandas as pd

    import tf_sine

    csv_path, run_dir, _ = series_run
    run = tf_sine.open_run(run_dir)
    frame = pd.read_csv(csv_path, parse_dates=["month"], index_col="month")
    on_frame = run.with_series(data=frame["sales"])
    assert on_frame.evaluate(horizon=2) == run.evaluate(horizon=2)
    forecast = on_frame.forecast(3, interval=0.9).to_frame()
    assert isinstance(forecast.index, pd.DatetimeIndex) and forecast.index[0] == pd.Timestamp("2021-09-01")
    expected = run.forecast(3, interval=0.9)
    np.testing.assert_array_equal(forecast["forecast"], expected.values)
    np.testing.assert_array_equal(forecast["lower"], expected.lower)
    assert list(forecast.columns) == [
        "forecast",
        "lower",
        "upper",
        "persistence",
        "mean",
        "seasonal_naive",
        "truth",
    ]
    assert forecast["truth"].isna().all()  # after the end: nothing known
    np.testing.assert_array_equal(run.predict(frame["sales"]), run.predict(frame["sales"].to_numpy()))


def test_a_run_trained_on_a_pandas_series_keeps_it_and_reopens_with_it(tmp_path, cli):
    import pandas as pd

    import tf_sine
    from tf_sine.pipeline import run_experiment

    path = write_seasonal_csv(tmp_path / "sales.csv", n=120)
    frame = pd.read_csv(path, parse_dates=["month"], index_col="month")
    frame.iloc[40, 0] = np.nan  # a gap, filled and never scored
    from tf_sine.series import from_pandas

    config = Config(units=4, steps=40, checkpoint_every=20)
    series = from_pandas(frame, fill="interpolate")
    result = run_experiment(config, tmp_path / "run", progress=False, series=series)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"] == "<pandas>" and saved["fill"] == "interpolate"
    run = tf_sine.open_run(tmp_path / "run")
    np.testing.assert_array_equal(run.dataset.levels, series.values)
    assert np.flatnonzero(run.dataset.filled).tolist() == [40]
    assert run.dataset.dates[0] == pd.Timestamp("1980-01-01")
    assert run.evaluate()["rmse"] == result.metrics["rmse"]
    status, stdout, _ = cli("evaluate", "--model", str(tmp_path / "run"), "--json")
    assert status == 0 and json.loads(stdout)["rmse"] == result.metrics["rmse"]
    # An interrupted run resumes on the same series; another series is refused.
    (tmp_path / "run" / "metrics.json").unlink()
    notes = []
    again = run_experiment(config, tmp_path / "run", progress=False, series=series, notify=notes.append)
    assert any("resuming" in note for note in notes) and again.metrics["rmse"] == result.metrics["rmse"]
    (tmp_path / "run" / "metrics.json").unlink()
    with pytest.raises(ValueError, match="run_dir: "):
        run_experiment(config, tmp_path / "run", progress=False, series=frame["sales"].fillna(0.0) * 2)
