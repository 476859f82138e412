"""Rolling-origin backtests: the folds' scores against an independent computation, refits per
fold that resume like training, and one line for what cannot be backtested."""

import csv

import numpy as np
import pytest
from conftest import call_main, write_seasonal_csv

import tf_sine
from tf_sine.backtest import backtest


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest")
    path = write_seasonal_csv(folder / "sales.csv", n=120)
    status, _, stderr = call_main("train", "--data", str(path), "--preset", "tiny", "--steps", "60",
                                  "--run-dir", str(folder / "run"), "--quiet")  # fmt: skip
    assert status == 0, stderr
    return tf_sine.open_run(folder / "run")


def test_each_fold_is_the_forecast_from_its_origin(small_run):
    result = backtest(small_run, folds=3, horizon=4)
    test = small_run.dataset.test_targets
    levels = small_run.dataset.levels
    errors = []
    for k, fold in enumerate(result.folds):
        origin = int(test[0]) - 1 + 4 * k
        forecast = small_run.forecast(4, origin=origin)
        truth = levels[origin + 1 : origin + 5]
        assert fold["origin"] == origin and fold["fold"] == k + 1
        assert fold["model_rmse"] == pytest.approx(np.sqrt(np.mean((forecast.values - truth) ** 2)), rel=1e-9)
        assert fold["persistence_rmse"] == pytest.approx(
            np.sqrt(np.mean((levels[origin] - truth) ** 2)), rel=1e-9
        )
        errors.append(forecast.values - truth)
    assert result.overall["model"]["rmse"] == pytest.approx(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
    frame = result.to_frame()
    assert list(frame["fold"]) == [1, 2, 3, "all"] and frame["model_mase"].notna().all()
    assert str(frame["origin"].dtype) == "Int64" and frame["origin"].iloc[:3].tolist() == [
        fold["origin"] for fold in result.folds
    ]
    with pytest.raises(
        ValueError, match=r"^folds: expected at most 4 folds of 4 steps in the test part's 18"
    ):
        backtest(small_run, folds=5, horizon=4)


def test_refits_write_a_run_per_fold_and_resume_like_training(small_run, tmp_path, cli):
    out = tmp_path / "bt"
    args = ("backtest", "--model", str(small_run.directory.path), "--folds", "2", "--horizon", "3",
            "--refit", "--out", str(out))  # fmt: skip
    status, stdout, stderr = cli(*args)
    assert status == 0, stderr
    assert "backtest of 2 folds, 3 steps each (a model trained at each origin)" in stdout
    assert stderr.count("backtest: fold") == 2
    first = (out / "backtest.csv").read_text()
    rows = list(csv.DictReader(first.splitlines()))
    assert [row["fold"] for row in rows] == ["1", "2", "all"] and (out / "backtest.png").is_file()
    origin = int(rows[1]["origin"])
    history = tf_sine.open_run(out / "folds" / "fold-2")
    assert len(history.dataset.levels) == origin + 1  # trained on the history up to its origin alone
    np.testing.assert_allclose(history.dataset.levels, small_run.dataset.levels[: origin + 1])
    # A backtest stopped while the second fold trained: the same command resumes that fold.
    (out / "folds" / "fold-2" / "metrics.json").unlink()
    status, _, stderr = cli(*args)
    assert status == 0 and "resuming" in stderr, stderr
    assert (out / "backtest.csv").read_text() == first  # the same models, the same scores


def test_what_cannot_be_backtested_is_one_line(small_run, cli):
    run_dir = str(small_run.directory.path)
    status, _, stderr = cli("backtest", "--model", run_dir, "--folds", "2", "--horizon", "3", "--refit")
    assert status == 2 and stderr.strip() == (
        "tf-sine: error: argument --out: expected a folder for the refitted folds' runs with --refit, got none"
    )
    status, _, stderr = cli("backtest", "--model", run_dir, "--folds", "0", "--horizon", "3")
    assert status == 2 and "argument --folds: expected a positive integer, got 0" in stderr


def test_a_folds_history_of_another_series_is_never_replaced(small_run, tmp_path):
    work = tmp_path / "folds"
    work.mkdir()
    (work / "fold-1.csv").write_text("the user's own file\n")
    with pytest.raises(ValueError, match=r"^work: expected '.*fold-1\.csv' to hold fold 1's history"):
        backtest(small_run, folds=1, horizon=3, refit=True, work=work)
    assert (work / "fold-1.csv").read_text() == "the user's own file\n"


def test_without_a_model_the_experiment_flags_train_at_every_origin(small_run, tmp_path):
    data = small_run.config.data
    out = tmp_path / "bt"
    status, stdout, stderr = call_main("backtest", "--data", data, "--preset", "tiny", "--units", "3", "--steps", "30",
                                       "--folds", "2", "--horizon", "3", "--out", str(out))  # fmt: skip
    assert status == 0, stderr
    assert "(a model trained at each origin)" in stdout
    fold = tf_sine.open_run(out / "folds" / "fold-1")
    assert (fold.config.units, fold.config.steps) == (3, 30)  # the flags' experiment, not a run's
    origin = int(next(csv.DictReader((out / "backtest.csv").open()))["origin"])
    np.testing.assert_allclose(fold.dataset.levels, small_run.dataset.levels[: origin + 1])
    status, _, stderr = call_main("backtest", "--folds", "2", "--horizon", "3", "--out", str(out))
    assert status == 2 and "--model: expected a trained run, or --data to train at each origin" in stderr
    status, _, stderr = call_main("backtest", "--model", str(small_run.directory.path), "--units", "5", "--folds",
                                  "2", "--horizon", "3")  # fmt: skip
    assert status == 2 and "--units: applies to a backtest without --model" in stderr
    assert stderr.count("\n") == 1


def test_finished_folds_of_another_experiment_are_refused(small_run, tmp_path):
    data = small_run.config.data
    out = tmp_path / "bt"
    common = ("backtest", "--data", data, "--preset", "tiny", "--steps", "20", "--folds", "1", "--horizon", "3",
              "--out", str(out))  # fmt: skip
    assert call_main(*common, "--units", "3")[0] == 0
    status, _, stderr = call_main(*common, "--units", "5")
    assert status == 2 and "to hold fold 1 of this experiment, got one trained with other units" in stderr


def test_refitted_folds_keep_filled_values_as_gaps(tmp_path):
    path = write_seasonal_csv(tmp_path / "gaps.csv", n=120)
    lines = path.read_text().splitlines()
    for row in (10, 50):  # a value cell emptied, in every fold's history
        lines[row + 1] = lines[row + 1].split(",")[0] + ","
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bt"
    status, _, stderr = call_main("backtest", "--data", str(path), "--fill", "interpolate", "--preset", "tiny",
                                  "--units", "3", "--steps", "20", "--folds", "2", "--horizon", "3",
                                  "--out", str(out))  # fmt: skip
    assert status == 0, stderr
    history = (out / "folds" / "fold-1.csv").read_text().splitlines()
    assert history[11].endswith(",") and history[51].endswith(",")  # gaps again, not the filled values
    fold = tf_sine.open_run(out / "folds" / "fold-1")
    assert fold.config.fill == "interpolate" and fold.dataset.filled.sum() == 2
