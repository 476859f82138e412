"""An experiment end to end: the run directory, reloading with plain Keras, TensorBoard logs."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY, expected_kernel

from tf_sine.files import read_json
from tf_sine.pipeline import run_experiment

RUN_FILES = {
    "model.keras",
    "config.json",
    "metrics.json",
    "history.json",
    "scaling.json",
    "prediction.png",
    "loss.png",
}


def test_run_directory_is_complete(tiny_run):
    path = tiny_run.run.path
    assert {p.name for p in path.iterdir()} >= RUN_FILES
    assert sorted(p.name for p in (path / "checkpoints").iterdir()) == [
        "history-000000-000040.npz", "step-000020.keras", "step-000020.state.json", "step-000040.keras",
        "step-000040.state.json",
    ]  # fmt: skip
    metrics = read_json(path / "metrics.json")
    assert {"rmse", "mse", "mae", "steps", "train_seconds"} <= set(metrics)
    assert metrics["steps"] == TINY.steps and metrics["train_seconds"] > 0
    assert (metrics["engine"], metrics["kernel"], metrics["device"]) == ("fast", expected_kernel(), "CPU")
    assert metrics["rmse"] == pytest.approx(np.sqrt(metrics["mse"]))
    # The sine's baselines on the same test targets; its season is 2*pi/0.01 = 628 samples.
    assert metrics["period"] == 628
    assert set(metrics["baselines"]) == {"persistence", "seasonal_naive", "mean"}
    assert read_json(path / "scaling.json") == {
        "difference": False,
        "scale": "none",
        "offset": 0.0,
        "factor": 1.0,
    }
    assert read_json(path / "config.json") == TINY.to_dict()
    history = read_json(path / "history.json")
    assert history["step"] == list(range(1, TINY.steps + 1)) and len(history["loss"]) == TINY.steps
    for plot in ("prediction.png", "loss.png"):
        assert (path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_keras_reproduces_metrics_without_tf_sine(tiny_run):
    """A fresh process that never imports tf_sine rebuilds the source's test windows itself."""
    code = """
import json, sys
import numpy as np, keras
run = sys.argv[1]
model = keras.models.load_model(run + "/model.keras")
test = np.sin(np.linspace(100.0, 110.0, 1000, dtype=np.float32))
x = np.array([[test[i:i + 10]] for i in range(len(test) - 11)], dtype=np.float32)
y = np.array([[test[i + 10]] for i in range(len(test) - 11)], dtype=np.float32)
rmse = float(np.sqrt(np.mean((model.predict(x, verbose=0) - y) ** 2)))
assert "tf_sine" not in sys.modules
print(json.dumps({"rmse": rmse}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_run.run.path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tiny_run.run.path,
        timeout=300,
    )
    rmse = json.loads(out.stdout.strip().splitlines()[-1])["rmse"]
    assert rmse == pytest.approx(tiny_run.metrics["rmse"], rel=1e-5)


def test_tensorboard_logs_hold_loss_and_graph(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_experiment(
        TINY.replace(steps=10, checkpoint_every=10), tmp_path / "tb", tensorboard=True, progress=False
    )
    events = EventAccumulator(str(result.run.tensorboard_dir))
    events.Reload()
    scalars = events.Tags()["tensors"] + events.Tags()["scalars"]
    assert "loss" in scalars
    loss_steps = [event.step for event in events.Tensors("loss")]
    assert loss_steps == list(range(1, 11))
    # tf.summary.trace_export stores the graph as run metadata for TensorBoard's Graphs tab.
    assert events.SummaryMetadata("model").plugin_data.plugin_name == "graph_run_metadata_graph"
    (graph_event,) = events.Tensors("model")
    assert b"lstm_0" in graph_event.tensor_proto.string_val[0]  # the model's layers are in it
