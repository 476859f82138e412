"""The native training op makes the updates Keras's own step makes: every optimizer, every clip."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, native_ops

from tf_sine.config import OPTIMIZERS
from tf_sine.data import sine_windows
from tf_sine.engines import FastEngine
from tf_sine.models import build_model
from tf_sine.training import batch_order, datafeeder_order
from tf_sine.whole_steps import coverage, whole_step_trainer

STEPS = 6


def _trained(route: str, options: dict, layout: str, batches: np.ndarray, sizes=None):
    """A model built from seed 0 and trained on `batches` by the graph (Keras's step) or the op."""
    native_ops()  # skips, saying why, where this machine is not expected to build the library
    train_x, train_y, _, _ = sine_windows(layout=layout)
    keras.utils.set_random_seed(0)
    model = build_model(layout=layout, **{"units": 5, **options})
    engine = FastEngine(model, train_x, train_y, batches.shape[1])
    if route == "graph":
        engine.whole_steps = None  # Keras's optimizer.apply inside the traced step
    else:
        assert engine.whole_steps is not None, coverage(model)
    losses = engine(batches, sizes)
    return (
        losses,
        [v.numpy() for v in model.trainable_variables],
        [v.numpy() for v in model.optimizer.variables],
    )


def _assert_same_updates(options: dict, layout: str, batches: np.ndarray, sizes=None) -> None:
    graph = _trained("graph", options, layout, batches, sizes)
    op = _trained("op", options, layout, batches, sizes)
    np.testing.assert_allclose(op[0], graph[0], rtol=1e-5, atol=1e-7)
    for ours, keras_own in zip(op[1] + op[2], graph[1] + graph[2], strict=True):
        np.testing.assert_allclose(ours, keras_own, rtol=2e-5, atol=2e-7)
    assert graph[2][0] == op[2][0] == len(batches)  # the iteration count


@pytest.mark.parametrize("optimizer", tuple(OPTIMIZERS))
def test_every_optimizer_updates_as_keras_does(optimizer):
    train_x, _, _, _ = sine_windows(layout="sequence")
    batches = batch_order(len(train_x), 32, 0, 0, STEPS)
    _assert_same_updates({"optimizer": optimizer, "learning_rate": 0.01}, "sequence", batches)


@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_every_clip_clips_as_keras_does(clip):
    train_x, _, _, _ = sine_windows()
    batches = batch_order(len(train_x), 32, 0, 0, STEPS)
    _assert_same_updates({"optimizer": "adam", clip: 0.01}, "legacy", batches)


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_other_cells_and_short_batches_train_as_the_graph_does(cell):
    train_x, _, _, _ = sine_windows()
    batches, sizes = datafeeder_order(len(train_x), 32, 310, 310 + STEPS)  # a batch of 5 at 313
    assert sizes.min() == 5
    _assert_same_updates({"cell": cell, "num_layers": 3}, "legacy", batches, sizes)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_layers_of_whole_register_tiles_and_short_batches_of_sequences(cell):
    """64 units: every step product takes products.h's tiles on every instruction set; a batch of
    5 among full ones (in halves of 2 and 3) re-zeroes what the head leaves zero between steps."""
    train_x, _, _, _ = sine_windows(layout="sequence")
    batches, sizes = datafeeder_order(len(train_x), 32, 310, 310 + STEPS)
    assert sizes.min() == 5
    # A learning rate below the preset's: at 0.1 a SimpleRNN this wide is thrown into a chaotic
    # regime (loss 12 at step 2) where float rounding alone parts any two implementations.
    _assert_same_updates({"cell": cell, "units": 64, "learning_rate": 0.01}, "sequence", batches, sizes)


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"bidirectional": True}, "is not a recurrent layer the native kernels compute"),
     ({"dropout": 0.2}, "is not a recurrent layer the native kernels compute")],
)  # fmt: skip
def test_models_the_op_does_not_cover_train_on_the_graph(options, reason):
    native_ops()
    train_x, train_y, _, _ = sine_windows()
    model = build_model(units=4, **options)
    assert reason in coverage(model)
    assert FastEngine(model, train_x, train_y, 32).whole_steps is None


def test_a_regularized_or_mixed_precision_model_is_left_to_keras():
    native_ops()
    model = keras.Sequential([keras.Input((1, 10)), keras.layers.LSTM(4, kernel_regularizer="l2"),
                              keras.layers.Dense(1)])  # fmt: skip
    model.compile(optimizer="adagrad", loss="mse")
    assert coverage(model) == "a layer adds a regularization loss"
    model = keras.Sequential([keras.Input((1, 10)), keras.layers.LSTM(4, dtype="mixed_float16"),
                              keras.layers.Dense(1)])  # fmt: skip
    model.compile(optimizer="adagrad", loss="mse")
    assert "mixed precision" in coverage(model)


def test_the_op_refuses_a_batch_index_outside_the_windows():
    native_ops()
    train_x, train_y, _, _ = sine_windows()
    model = build_model(units=4)
    run = whole_step_trainer(model, tf.constant(train_x), tf.constant(train_y))
    before = [v.numpy() for v in model.trainable_variables]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"batch index {len(train_x)} outside"):
        run(np.full((2, 32), len(train_x), np.int32))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables, strict=True))


def test_halves_on_two_threads_give_one_threads_updates_and_repeat_bit_for_bit():
    native_ops()
    train_x, train_y, _, _ = sine_windows(layout="sequence")
    batches = batch_order(len(train_x), 32, 0, 0, STEPS)
    results = []
    for halves in (False, True, True):
        keras.utils.set_random_seed(0)
        model = build_model(layout="sequence", units=5)
        run = whole_step_trainer(model, tf.constant(train_x), tf.constant(train_y), halves=halves)
        results.append((run(batches), [v.numpy() for v in model.trainable_variables]))
    (one_losses, one), (two_losses, two), (again_losses, again) = results
    np.testing.assert_allclose(two_losses, one_losses, rtol=1e-5)
    for a, b, c in zip(one, two, again, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(c, b)  # the same threads' split: the same bits
    np.testing.assert_array_equal(again_losses, two_losses)


def test_metrics_say_which_route_trained(tmp_path, monkeypatch, cli):
    native_ops()
    status, _, stderr = cli("train", "--preset", "tiny", "--run-dir", str(tmp_path / "op"), "--quiet")
    assert status == 0, stderr
    monkeypatch.setenv("TF_SINE_WHOLE_STEPS", "0")
    status, _, stderr = cli("train", "--preset", "tiny", "--run-dir", str(tmp_path / "graph"), "--quiet")
    assert status == 0, stderr
    op, graph = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("op", "graph"))
    assert op["whole_steps"] is True and graph["whole_steps"] is False
    assert op["kernel"] == graph["kernel"] == "native_lstm"
    assert op["rmse"] == pytest.approx(graph["rmse"], rel=1e-4)


def test_the_op_is_never_chosen_on_a_gpu(monkeypatch):
    native_ops()
    monkeypatch.setattr("tf_sine.whole_steps.training_device", lambda: "GPU")
    assert coverage(build_model(units=4)) == "training runs on a GPU"


def test_memory_the_op_cannot_get_is_an_error_not_an_abort():
    """Its own buffers (not TensorFlow's) failing to allocate: TensorFlow's out-of-memory error.

    A process held to a little more address space than it has (RLIMIT_AS) trains a batch whose
    buffers in the op need several hundred megabytes; an exception leaving the op had aborted it.
    """
    native_ops()
    script = """if True:
        import resource
        import numpy as np
        from tf_sine import build_model, train
        model = build_model(layout="sequence", timesteps=100, units=256, num_layers=1)
        x, y = np.zeros((4096, 100, 1), np.float32), np.zeros((4096, 1), np.float32)
        status = open("/proc/self/status").read()
        size = int(status.split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (128 << 20), resource.RLIM_INFINITY))
        try:
            train(model, x, y, steps=1, batch_size=4096, progress=False)
        except Exception as error:
            print(type(error).__name__, error)
    """
    # The op trains on the CPU only; few threads, so a machine of many cores starts no thread
    # after the limit is set.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_NUM_INTRAOP_THREADS="2", TF_NUM_INTEROP_THREADS="1")
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ResourceExhaustedError" in done.stdout and "tf_sine kernels' own buffers" in done.stdout, (
        done.stdout
    )
