"""The export for serving: a SavedModel read by TensorFlow alone and by saved_model_cli, and TFLite."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import TINY, run_cli, seasonal_series, write_seasonal_csv

import tf_sine
from tf_sine.dataset import Dataset
from tf_sine.evaluation import predict_levels
from tf_sine.export import export_model, run_tflite
from tf_sine.runs import RunDirectory

SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


@pytest.fixture(scope="module")
def series_export(tmp_path_factory):
    """A differenced, scaled sequence-layout run on a seasonal series, exported through the CLI."""
    folder = tmp_path_factory.mktemp("export")
    csv_path = write_seasonal_csv(folder / "sales.csv", n=200)
    config = TINY.replace(data=str(csv_path), layout="sequence", difference=True, timesteps=12)
    run = tf_sine.run_experiment(config, folder / "run", progress=False).run
    done = run_cli("export", "--model", str(run.path), "--out", str(folder / "export"))
    assert done.returncode == 0, done.stderr
    return run.path, folder / "export", done


def test_the_manifest_and_the_cli_summary(series_export):
    _, out, done = series_export
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["signatures"]["serving_default"]["inputs"] == {"window": [None, 12, 1]}
    assert manifest["signatures"]["next_value"]["inputs"] == {"values": [None, 13]}  # one more to difference
    assert manifest["tflite"]["file"] == "model.tflite" and (out / "model.tflite").stat().st_size > 0
    assert "signature serving_default: window [batch, 12, 1] -> prediction [batch, 1]" in done.stdout
    assert "W0000" not in done.stderr and "Ignored" not in done.stderr, done.stderr  # the converter's notes


def test_a_fresh_process_without_tf_sine_serves_what_the_keras_model_predicts(series_export, tmp_path):
    run_dir, out, _ = series_export
    windows = np.random.default_rng(0).normal(size=(7, 12, 1)).astype(np.float32)
    np.save(tmp_path / "windows.npy", windows)
    code = """
import sys
import numpy as np, tensorflow as tf, keras
served = tf.saved_model.load(sys.argv[1] + "/saved_model")
windows = np.load(sys.argv[3])
signature = served.signatures["serving_default"]
prediction = signature(window=tf.constant(windows))["prediction"].numpy()
reference = keras.models.load_model(sys.argv[2] + "/model.keras").predict(windows, verbose=0)
assert "tf_sine" not in sys.modules
print(float(np.abs(prediction - reference).max()), prediction.shape)
"""
    done = subprocess.run([sys.executable, "-c", code, str(out), str(run_dir), str(tmp_path / "windows.npy")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    difference, shape = done.stdout.split(maxsplit=1)
    assert float(difference) < 1e-5 and shape.strip() == "(7, 1)"


def test_saved_model_cli_runs_the_signature(series_export, tmp_path):
    run_dir, out, _ = series_export
    windows = np.random.default_rng(1).normal(size=(3, 12, 1)).astype(np.float32)
    np.save(tmp_path / "windows.npy", windows)
    done = subprocess.run(
        [str(SAVED_MODEL_CLI), "run", "--dir", str(out / "saved_model"), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"window={tmp_path / 'windows.npy'}",
         "--outdir", str(tmp_path / "result")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    served = np.load(tmp_path / "result" / "prediction.npy")
    reference = keras.models.load_model(run_dir / "model.keras").predict(windows, verbose=0)
    np.testing.assert_allclose(served, reference, atol=1e-5)


def test_tflite_predicts_what_the_keras_model_predicts(series_export):
    run_dir, out, _ = series_export
    windows = np.random.default_rng(2).normal(size=(5, 12, 1)).astype(np.float32)
    reference = keras.models.load_model(run_dir / "model.keras").predict(windows, verbose=0)
    np.testing.assert_allclose(run_tflite(out / "model.tflite", windows), reference, atol=1e-5)


def test_next_value_answers_in_the_series_units(series_export):
    import tensorflow as tf

    run_dir, out, _ = series_export
    model, _ = tf_sine.load_model(run_dir)
    transform = RunDirectory(run_dir).load_transform()
    levels = seasonal_series(60)
    empty = np.arange(0)
    reference = predict_levels(model, Dataset(levels, empty, empty, empty, 60), transform, np.arange(13, 61))
    rows = np.lib.stride_tricks.sliding_window_view(levels, 13).astype(np.float32)  # row i ends at i + 12
    served = tf.saved_model.load(str(out / "saved_model")).signatures["next_value"](values=tf.constant(rows))
    np.testing.assert_allclose(served["next_value"].numpy(), reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "options",
    [dict(cell="gru", layout="sequence"), dict(cell="simple_rnn", bidirectional=True, layout="sequence"),
     dict(cell="lstm", layout="legacy", num_layers=3)],
)  # fmt: skip
def test_every_cell_converts_to_tflite(tmp_path, options):
    keras.utils.set_random_seed(0)
    model = tf_sine.build_model(units=6, timesteps=9, **options)
    manifest = export_model(model, tmp_path)
    assert manifest["tflite"]["file"] == "model.tflite", manifest["tflite"]
    windows = np.random.default_rng(3).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(
        run_tflite(tmp_path / "model.tflite", windows), model.predict(windows, verbose=0), atol=1e-5
    )


def test_an_export_is_not_replaced_without_overwrite(series_export):
    run_dir, out, _ = series_export
    before = (out / "export.json").read_bytes()
    done = run_cli("export", "--model", str(run_dir), "--out", str(out))
    assert done.returncode == 2 and "argument --out:" in done.stderr and "--overwrite" in done.stderr
    assert (out / "export.json").read_bytes() == before
