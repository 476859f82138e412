"""The run directory: atomic writes, checkpoints kept, model loading errors."""

import json

import pytest

import tf_sine
from tf_sine.files import atomic_write, write_json
from tf_sine.runs import RunDirectory
from tf_sine.trained import load_model


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"rmse": 1.0})

    def broken(path):
        path.write_text('{"rmse": 2.')  # half a file, then a crash
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"rmse": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary left


def test_checkpoints_keep_the_newest(tmp_path):
    run = RunDirectory.create(tmp_path / "run")
    model = tf_sine.build_model(units=2)
    for step in (10, 20, 30, 40):
        run.checkpoints.save(model, step, keep=2)
    assert [step for step, _ in run.checkpoints.saved()] == [30, 40]
    loaded, config = load_model(run.checkpoints.saved()[-1][1])
    assert loaded.count_params() == model.count_params() and config is None


def test_run_directory_refuses_a_file_and_an_unwritable_place(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="run_dir: expected a directory, got the file"):
        RunDirectory.create(tmp_path / "file")
    with pytest.raises(ValueError, match="run_dir: cannot create"):
        RunDirectory.create(tmp_path / "file" / "below")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.keras", "model: expected an existing .keras file or run directory, got"),
        (
            lambda d: d,
            "model: expected a .keras file or a run directory holding model.keras, got the directory",
        ),
        (
            lambda d: _write(d / "weights.h5", b"x"),
            "model: expected a .keras file or a file of a run directory, got",
        ),
        (lambda d: _write(d / "bad.keras", b"not a zip"), "model: cannot load .* as a Keras model"),
    ],
)
def test_load_model_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        load_model(make(tmp_path))


def test_truncated_model_file_is_refused(tmp_path):
    model = tf_sine.build_model(units=2)
    model.save(tmp_path / "whole.keras")
    data = (tmp_path / "whole.keras").read_bytes()
    _write(tmp_path / "half.keras", data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model: cannot load .*half\.keras.* as a Keras model"):
        load_model(tmp_path / "half.keras")


def _write(path, data):
    path.write_bytes(data)
    return path
