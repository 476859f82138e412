"""Errors that tell a user's mistake from a bug of ours (tf_sine.errors), through the API and the CLI."""

import errno

import numpy as np
import pytest
from conftest import TINY

import tf_sine
from tf_sine.errors import ConfigError, DataError, ModelError, RunError, TfSineError


def _fail_with(monkeypatch, error: Exception) -> None:
    """Makes training raise `error`, as a bug or a machine fault would, wherever it happens."""

    def raising(*args, **kwargs):
        raise error

    monkeypatch.setattr("tf_sine.pipeline.run_experiment", raising)


@pytest.mark.parametrize("error", [TypeError("unexpected keyword argument 'x'"), ValueError("too many values"),
                                   KeyError("rmse"), RuntimeError("")])  # fmt: skip
def test_an_internal_error_exits_1_and_is_called_a_bug(cli, monkeypatch, tmp_path, error):
    _fail_with(monkeypatch, error)
    status, _, stderr = cli(
        "train", "--units", "4", "--steps", "2", "--quiet", "--run-dir", str(tmp_path / "r")
    )
    assert status == 1 and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("tf-sine: internal error, a bug in tf_sine and not a mistake in the command (")
    assert type(error).__name__ in stderr and "argument --" not in stderr and "Traceback" not in stderr
    monkeypatch.setenv("TF_SINE_DEBUG", "1")
    status, _, stderr = cli(
        "train", "--units", "4", "--steps", "2", "--quiet", "--run-dir", str(tmp_path / "r")
    )
    assert status == 1 and stderr.startswith("Traceback (most recent call last):")
    assert stderr.splitlines()[-1].startswith("tf-sine: internal error")


def test_a_full_disk_exits_1_with_one_line_naming_the_file(cli, monkeypatch, tmp_path):
    _fail_with(
        monkeypatch, OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "model.keras"))
    )
    status, _, stderr = cli(
        "train", "--units", "4", "--steps", "2", "--quiet", "--run-dir", str(tmp_path / "r")
    )
    assert (status, stderr) == (
        1,
        f"tf-sine: error: No space left on device: {tmp_path / 'r' / 'model.keras'}\n",
    )


def test_a_split_that_leaves_a_part_empty_names_the_values_needed(cli, tmp_path):
    """20 values split 0.998,0.001,0.001: a bare StopIteration once; now the length it needs."""
    csv_path = tmp_path / "short.csv"
    csv_path.write_text("value\n" + "\n".join(str(v) for v in np.sin(np.arange(20.0))) + "\n")
    status, _, stderr = cli("train", "--data", str(csv_path), "--split", "0.998,0.001,0.001", "--quiet",
                            "--run-dir", str(tmp_path / "r"))  # fmt: skip
    assert status == 2 and stderr == (
        "tf-sine: error: argument --data: expected at least 750 values for one window of 10 steps plus the "
        "split 0.998,0.001,0.001, got 20\n"
    )
    with pytest.raises(DataError, match="expected at least 750 values"):
        tf_sine.split_series(np.arange(20.0), (0.998, 0.001, 0.001), 10)


def test_each_kind_of_mistake_has_its_class_and_names_its_argument(tmp_path, tiny_run):
    cases = [
        (ConfigError, "units", lambda: TINY.replace(units=0)),
        (DataError, "data", lambda: tf_sine.read_series_file(tmp_path / "missing.csv")),
        (RunError, "run_dir", lambda: tf_sine.run_experiment(TINY, tiny_run.run.path, progress=False)),
        (ModelError, "model", lambda: tf_sine.open_run(tmp_path / "bad.keras")),
    ]
    (tmp_path / "bad.keras").write_bytes(b"not a zip archive")
    for kind, argument, call in cases:
        with pytest.raises(kind) as caught:
            call()
        error = caught.value
        assert isinstance(error, TfSineError) and isinstance(
            error, ValueError
        )  # old callers catch ValueError
        assert error.argument == argument and str(error) == f"{argument}: {error.detail}"


def test_a_failed_run_exits_1_with_its_own_line(cli, monkeypatch, tmp_path):
    from tf_sine.training import TrainingDivergedError

    _fail_with(monkeypatch, TrainingDivergedError(7, float("nan")))
    status, _, stderr = cli(
        "train", "--units", "4", "--steps", "2", "--quiet", "--run-dir", str(tmp_path / "r")
    )
    assert status == 1 and stderr.startswith("tf-sine: error: training diverged: the loss is nan at step 7")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--seed", "-1"], "argument --seed: expected an integer from 0 to 2**32 - 1, got -1"),
        (["train", "--seed", str(2**32)], f"argument --seed: expected an integer from 0 to 2**32 - 1, got {2**32}"),
        (["compare", "--out", "{file}"], "argument --out: expected a directory, got the file"),
        (["predict", "--model", "{run}", "--input", "{binary}"], "argument --input: expected UTF-8 text or a .npy file, got invalid start byte"),
        (["evaluate", "--model", "{damaged}"], "argument --model: the run '{damaged}' has an unreadable config.json or scaling.json"),
    ],
    ids=["negative-seed", "huge-seed", "study-out-is-a-file", "binary-input", "damaged-run"],
)  # fmt: skip
def test_bad_input_that_once_read_as_a_bug_is_a_usage_error(cli, tmp_path, tiny_run, argv, message):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_run.run.path, damaged)
    (damaged / "config.json").write_text('{"units": "many"')
    (tmp_path / "file").write_text("a file")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00binary")
    paths = {
        "file": tmp_path / "file",
        "run": tiny_run.run.path,
        "binary": tmp_path / "binary.txt",
        "damaged": damaged,
    }
    status, _, stderr = cli(*[part.format(**paths) for part in argv])
    assert status == 2 and stderr.startswith("tf-sine: error: " + message.format(**paths)), stderr
    assert len(stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("write", "message"),
    [(lambda path: np.save(path, np.array([])), "expected values in .*, got an empty array"),
     (lambda path: np.savez(path.with_suffix(""), a=np.ones(3), b=np.ones(3)) or path.with_suffix(".npz").rename(path),
      "expected one array in .*, got an archive of 2")],
    ids=["empty", "npz-named-npy"],
)  # fmt: skip
def test_unusable_npy_files_are_data_errors(tmp_path, write, message):
    path = tmp_path / "series.npy"
    write(path)
    with pytest.raises(DataError, match=message):
        tf_sine.read_series_file(path)


def test_library_messages_name_arguments_and_the_cli_shows_flags(tiny_run, cli, tmp_path):
    from tf_sine.cli.common import in_flags

    assert in_flags("pass `overwrite`, or another `run_dir`; `num_layers`") == (
        "pass --overwrite, or another --run-dir; --layers"
    )
    with pytest.raises(RunError) as caught:  # the library speaks its own terms
        tf_sine.run_experiment(TINY, tiny_run.run.path, progress=False)
    assert "pass `overwrite` to train it again, or choose another `run_dir`" in str(caught.value)
    status, _, stderr = cli("train", "--preset", "tiny", "--run-dir", str(tiny_run.run.path))
    assert status == 2 and "pass --overwrite to train it again, or choose another --run-dir" in stderr
    assert "`" not in stderr


def _tensorflows_out_of_memory() -> Exception:
    """TensorFlow's error for an allocation that cannot be met, with the message its CPU
    allocator gives. Made directly: a real 16 PiB `tf.zeros` is refused only after the
    allocator has retried for 10 s."""
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[1099511627776,4096] and type float on "
        "/job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu",
    )  # fmt: skip


@pytest.mark.parametrize("make", [_tensorflows_out_of_memory, MemoryError], ids=["tensorflow", "python"])
def test_running_out_of_memory_is_one_line_not_a_bug(cli, monkeypatch, tmp_path, make):
    _fail_with(monkeypatch, make())
    status, _, stderr = cli(
        "train", "--units", "4", "--steps", "2", "--quiet", "--run-dir", str(tmp_path / "r")
    )
    assert status == 1 and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("tf-sine: error: out of memory (") and "internal error" not in stderr
    assert "try fewer --units or --layers, or a smaller --batch-size" in stderr
    if make is not MemoryError:
        assert "shape[1099511627776,4096]" in stderr  # TensorFlow's message names what did not fit
