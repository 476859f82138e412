"""TF1 checkpoints of the source's network (0.12 and 1.x names) brought into Keras: same predictions.

Each checkpoint is written by TensorFlow's own v1 `Saver` in graph mode, and its reference
predictions computed in the same graph: for 1.x by TF's own v1 `BasicLSTMCell`, `MultiRNNCell`
and `static_rnn` (still in TF 2, under `tensorflow.python.ops.rnn_cell_impl`; the public
`tf.compat.v1.nn.rnn_cell` needs the tf_keras package), for 0.12 by ops that follow 0.12's
`BasicLSTMCell.__call__`, `_linear` and `MultiRNNCell.__call__` line for line.
"""

import re
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import call_main

import tf_sine
from tf_sine.compat import TF1_HEAD, TF1_NAMES, convert_tf1_checkpoint, load_tf1_checkpoint
from tf_sine.errors import ConfigError, ModelError

v1 = tf.compat.v1
UNITS, LAYERS, TIMESTEPS = 30, 2, 10  # the source's HIDDEN_SIZE, NUM_LAYERS, TIMESTEPS
LAYOUTS = {"legacy": (1, TIMESTEPS), "sequence": (TIMESTEPS, 1)}  # window shape: (steps, values)
TOLERANCE = 1e-6
TF1_HEAD_W, TF1_HEAD_B = TF1_HEAD


def windows(layout: str, n: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, *LAYOUTS[layout])).astype(np.float32)


def cell_name(scheme: str, index: int, which: int) -> str:
    """The checkpoint name of cell `index`'s joint matrix (which=1) or bias (which=2)."""
    scope, *names = TF1_NAMES[scheme]
    return scope.format(index) + names[which - 1]


def random_weights(rng: np.random.Generator, name: str, shape) -> np.ndarray:
    """Weights of about a trained sine model's size: predictions within the sine's range, where
    float32 leaves the two ways of summing (`[x, h] @ W` against `x @ K + h @ R`) ulps apart."""
    return rng.normal(0, 0.15 if name.startswith("fully_connected/") else 0.5, shape).astype(np.float32)


def cell_012(inputs, state, matrix, bias, forget_bias=1.0):
    """TF 0.12's BasicLSTMCell.__call__ (state_is_tuple), _linear inlined."""
    c, h = state
    concat = tf.matmul(tf.concat([inputs, h], 1), matrix) + bias  # _linear([inputs, h], 4 * units, True)
    # i = input_gate, j = new_input, f = forget_gate, o = output_gate
    i, j, f, o = tf.split(concat, 4, axis=1)
    new_c = c * tf.sigmoid(f + forget_bias) + tf.sigmoid(i) * tf.tanh(j)
    new_h = tf.tanh(new_c) * tf.sigmoid(o)
    return new_h, (new_c, new_h)


def write_012(prefix: Path, x: np.ndarray, seed: int = 0, drop=(), shapes=None, version=2) -> np.ndarray:
    """Saves a 0.12-named checkpoint of random weights at `prefix`; returns the graph's predictions.

    `drop` leaves variables out and `shapes` gives some another shape (then nothing is computed);
    `version` 1 writes the one-file format that came before 0.12's default V2.
    """
    rng = np.random.default_rng(seed)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    width = x.shape[2]
    sizes = {TF1_HEAD_W: (UNITS, 1), TF1_HEAD_B: (1,)}
    for index in range(LAYERS):
        sizes[cell_name("0.12", index, 1)] = ((width if index == 0 else UNITS) + UNITS, 4 * UNITS)
        sizes[cell_name("0.12", index, 2)] = (4 * UNITS,)
    sizes.update(shapes or {})
    with tf.Graph().as_default(), v1.Session() as session:
        variables = {name: v1.Variable(random_weights(rng, name, shape))
                     for name, shape in sizes.items() if name not in drop}  # fmt: skip
        output = None
        if not drop and not shapes:
            inputs = v1.placeholder(tf.float32, (None, *x.shape[1:]))
            state = [(tf.zeros((tf.shape(inputs)[0], UNITS)),) * 2 for _ in range(LAYERS)]
            for step in tf.unstack(inputs, axis=1):  # tf.nn.rnn over tf.unpack(X, axis=1)
                for index in range(LAYERS):  # MultiRNNCell: "Cell%d" % i
                    matrix, bias = (variables[cell_name("0.12", index, k)] for k in (1, 2))
                    step, state[index] = cell_012(step, state[index], matrix, bias)
            output = tf.matmul(step, variables[TF1_HEAD_W]) + variables[TF1_HEAD_B]
        session.run(v1.global_variables_initializer())
        write_version = v1.train.SaverDef.V2 if version == 2 else v1.train.SaverDef.V1
        v1.train.Saver(var_list=variables, write_version=write_version).save(session, str(prefix))
        return None if output is None else session.run(output, {inputs: x})


def write_1x(prefix: Path, x: np.ndarray, scheme: str, seed: int = 0, forget_bias: float = 1.0) -> np.ndarray:
    """Saves TF's own v1 cells' variables under `scheme`'s names; returns the graph's predictions."""
    from tensorflow.python.ops import rnn_cell_impl

    rng = np.random.default_rng(seed)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default(), v1.Session() as session:
        inputs = v1.placeholder(tf.float32, (None, *x.shape[1:]))
        cell = rnn_cell_impl.MultiRNNCell(
            [rnn_cell_impl.BasicLSTMCell(UNITS, forget_bias=forget_bias) for _ in range(LAYERS)]
        )
        outputs, _ = v1.nn.static_rnn(cell, tf.unstack(inputs, axis=1), dtype=tf.float32)
        with v1.variable_scope("fully_connected"):  # contrib's fully_connected(output, 1, None)
            weights = v1.get_variable("weights", (UNITS, 1))
            biases = v1.get_variable("biases", (1,))
        output = tf.matmul(outputs[-1], weights) + biases
        session.run(v1.global_variables_initializer())
        for variable in v1.global_variables():  # random biases too (TF's start at zero)
            variable.load(random_weights(rng, variable.op.name, variable.shape), session)
        names = {variable.op.name: variable for variable in v1.global_variables()}
        if scheme == "1.0":  # what 1.0 and 1.1 called them
            renamed = {"kernel": "weights", "bias": "biases"}
            names = {re.sub(r"/(kernel|bias)$", lambda m: "/" + renamed[m.group(1)], name): variable
                     for name, variable in names.items()}  # fmt: skip
        assert cell_name(scheme, 1, 1) in names, sorted(names)
        v1.train.Saver(var_list=names).save(session, str(prefix))
        return session.run(output, {inputs: x})


def write_checkpoint(folder: Path, scheme: str, layout: str) -> tuple[Path, np.ndarray, np.ndarray]:
    x = windows(layout)
    prefix = folder / "model.ckpt-3000"
    expected = write_012(prefix, x) if scheme == "0.12" else write_1x(prefix, x, scheme)
    return prefix, x, expected


def max_difference(model: keras.Model, x: np.ndarray, expected: np.ndarray) -> float:
    predicted = np.asarray(model(x, training=False))
    assert predicted.shape == expected.shape == (len(x), 1)
    return float(np.max(np.abs(predicted - expected)))


@pytest.mark.parametrize("layout", ["legacy", "sequence"])
@pytest.mark.parametrize("scheme", ["0.12", "1.0", "1.2"])
def test_the_converted_model_predicts_what_the_tf1_graph_did(tmp_path, scheme, layout):
    prefix, x, expected = write_checkpoint(tmp_path / "ckpt", scheme, layout)
    model = load_tf1_checkpoint(prefix)  # every size read from the checkpoint
    assert model.input_shape == (None, *LAYOUTS[layout])
    assert [layer.units for layer in model.layers[:-1]] == [UNITS] * LAYERS
    difference = max_difference(model, x, expected)
    print(f"TF {scheme}, {layout} layout: max |keras - tf1| = {difference:.2e}")
    assert difference <= TOLERANCE


def test_the_forget_bias_is_folded_into_the_forget_gate(tmp_path):
    # Sequence windows: with one step (the legacy layout) the state starts at zero, so the
    # forget gate and the recurrent kernel never act.
    x = windows("sequence")
    expected = write_1x(tmp_path / "model.ckpt", x, "1.2", forget_bias=0.3)
    assert (
        max_difference(load_tf1_checkpoint(tmp_path / "model.ckpt", forget_bias=0.3), x, expected)
        <= TOLERANCE
    )
    assert max_difference(load_tf1_checkpoint(tmp_path / "model.ckpt"), x, expected) > 1e-3


def test_a_folder_its_files_and_a_copied_folder_all_name_the_checkpoint(tmp_path):
    prefix, x, expected = write_checkpoint(tmp_path / "Models" / "model_2", "1.2", "legacy")
    # The `checkpoint` file names absolute paths, as TF1's did: a folder copied elsewhere
    # still finds its checkpoint beside that file.
    copied = shutil.copytree(prefix.parent, tmp_path / "copied")
    shutil.rmtree(prefix.parent)
    for path in (copied, copied / "model.ckpt-3000", copied / "model.ckpt-3000.index"):
        assert max_difference(tf_sine.load_tf1_checkpoint(path), x, expected) <= TOLERANCE


def test_a_checkpoint_in_the_older_v1_format_reads_the_same(tmp_path):
    x = windows("sequence")
    expected = write_012(tmp_path / "model.ckpt-3000", x, version=1)
    assert (tmp_path / "model.ckpt-3000").is_file()  # V1: one file, no .index
    assert max_difference(load_tf1_checkpoint(tmp_path), x, expected) <= TOLERANCE


def test_given_options_must_agree_with_the_checkpoint(tmp_path):
    prefix, x, expected = write_checkpoint(tmp_path, "0.12", "legacy")
    model = load_tf1_checkpoint(
        prefix, units=30, num_layers=2, timesteps=10, layout="legacy", optimizer="adam"
    )
    assert max_difference(model, x, expected) <= TOLERANCE
    # Read as a sequence model: ten features per step; one step of them predicts the same.
    model = load_tf1_checkpoint(prefix, layout="sequence", timesteps=1)
    assert model.input_shape == (None, 1, 10)
    assert max_difference(model, x, expected) <= TOLERANCE
    refused = {
        "units": {"units": 20},
        "num_layers": {"num_layers": 3},
        "timesteps": {"timesteps": 12},
        "features": {"layout": "sequence", "features": 2},
        "cell": {"cell": "gru"},
        "bidirectional": {"bidirectional": True},
        "steps": {"steps": 10},
        "forget_bias": {"forget_bias": "1"},
    }
    for argument, options in refused.items():
        with pytest.raises(ConfigError) as raised:
            load_tf1_checkpoint(prefix, **options)
        assert raised.value.argument == argument, str(raised.value)
    with pytest.raises(ConfigError, match=r"^units: expected 30, the units of its cells in the checkpoint"):
        load_tf1_checkpoint(prefix, units=20)


def convert(*argv: str) -> tuple[int, str, str]:
    status, out, err = call_main("convert", *map(str, argv))
    return status, out, err


def test_the_cli_writes_a_plain_keras_model_that_predicts_the_same(tmp_path):
    prefix, x, expected = write_checkpoint(tmp_path / "Models" / "model_2", "0.12", "legacy")
    out = tmp_path / "converted" / "model.keras"
    status, stdout, stderr = convert("--tf1-checkpoint", prefix.parent, "--out", out)
    assert (status, stderr) == (0, ""), stderr
    assert "2 LSTM layers of 30 units" in stdout and "windows (batch, 1, 10)" in stdout
    loaded = keras.models.load_model(out)  # plain Keras: no custom objects
    assert [layer.__class__.__name__ for layer in loaded.layers] == ["LSTM", "LSTM", "Dense"]
    difference = max_difference(loaded, x, expected)
    print(f"CLI convert, TF 0.12 legacy, after keras.models.load_model: max |keras - tf1| = {difference:.2e}")
    assert difference <= TOLERANCE
    assert sorted(path.name for path in out.parent.iterdir()) == ["model.keras"]  # no temporary left

    status, _, stderr = convert("--tf1-checkpoint", prefix, "--out", out)
    assert status == 2 and stderr == (
        f"tf-sine: error: argument --out: {str(out)!r} already exists; pass --overwrite to replace it\n"
    )
    status, _, stderr = convert("--tf1-checkpoint", prefix, "--out", out, "--overwrite", "--layout", "sequence",
                                "--timesteps", "1")  # fmt: skip
    assert (status, stderr) == (0, "")
    assert keras.models.load_model(out).input_shape == (None, 1, 10)

    status, _, stderr = convert("--tf1-checkpoint", prefix, "--out", out, "--units", "20", "--overwrite")
    assert status == 2 and stderr.startswith("tf-sine: error: argument --units: expected 30,")


def one_line_error(*argv) -> str:
    status, stdout, stderr = convert(*argv)
    assert (status, stdout) == (2, ""), stderr
    assert stderr.count("\n") == 1, stderr
    return stderr


def test_bad_checkpoints_and_outputs_are_one_line_errors(tmp_path):
    x = windows("legacy")
    out = tmp_path / "model.keras"
    matrix_1, bias_1 = cell_name("0.12", 1, 1), cell_name("0.12", 1, 2)

    write_012(tmp_path / "missing" / "model.ckpt", x, drop={bias_1})
    assert one_line_error("--tf1-checkpoint", tmp_path / "missing", "--out", out) == (
        f"tf-sine: error: argument --tf1-checkpoint: expected {bias_1} of shape (120,), found no such "
        f"variable in {str(tmp_path / 'missing' / 'model.ckpt')!r}\n"
    )
    write_012(tmp_path / "no_head" / "model.ckpt", x, drop={TF1_HEAD_W})
    assert f"expected {TF1_HEAD_W} of shape (30, 1), found no such variable" in one_line_error(
        "--tf1-checkpoint", tmp_path / "no_head", "--out", out
    )

    write_012(tmp_path / "misshapen" / "model.ckpt", x, shapes={matrix_1: (40, 120)})
    assert one_line_error("--tf1-checkpoint", tmp_path / "misshapen", "--out", out) == (
        f"tf-sine: error: argument --tf1-checkpoint: expected {matrix_1} of shape (60, 120), got (40, 120)\n"
    )

    (tmp_path / "empty").mkdir()
    assert one_line_error("--tf1-checkpoint", tmp_path / "empty", "--out", out) == (
        f"tf-sine: error: argument --tf1-checkpoint: expected a checkpoint in {str(tmp_path / 'empty')!r} "
        "(a folder with a 'checkpoint' file, or a prefix such as model.ckpt-3000), found none\n"
    )
    nowhere = tmp_path / "nowhere" / "model.ckpt-3000"
    assert one_line_error("--tf1-checkpoint", nowhere, "--out", out) == (
        "tf-sine: error: argument --tf1-checkpoint: expected a TF checkpoint (a folder with a "
        f"'checkpoint' file, or a prefix such as model.ckpt-3000), got {str(nowhere)!r}\n"
    )
    (tmp_path / "other").mkdir()
    with tf.Graph().as_default(), v1.Session() as session:  # a checkpoint of something else
        saver = v1.train.Saver(var_list={"dense/kernel": v1.Variable(np.zeros((3, 1)))})
        session.run(v1.global_variables_initializer())
        saver.save(session, str(tmp_path / "other" / "model.ckpt"))
    assert "expected the variables of a MultiRNNCell of BasicLSTMCells (RNN/MultiRNNCell/Cell0/" in (
        one_line_error("--tf1-checkpoint", tmp_path / "other", "--out", out)
    )

    assert one_line_error("--tf1-checkpoint", tmp_path / "missing", "--out", tmp_path / "model.h5") == (
        f"tf-sine: error: argument --out: expected a file name ending in .keras, got "
        f"{str(tmp_path / 'model.h5')!r}\n"
    )
    assert not out.exists()


def test_the_library_refuses_what_the_cli_does_and_writes_a_loadable_file(tmp_path):
    prefix, x, expected = write_checkpoint(tmp_path, "1.0", "sequence")
    with pytest.raises(ConfigError, match=r"^out: expected a file name ending in \.keras"):
        convert_tf1_checkpoint(prefix, tmp_path / "model")
    with pytest.raises(ModelError, match=r"^tf1_checkpoint: expected a TF checkpoint"):
        convert_tf1_checkpoint(tmp_path / "absent", tmp_path / "model.keras")
    model = convert_tf1_checkpoint(prefix, tmp_path / "model.keras")
    assert model.input_shape == (None, 10, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipping variable loading for optimizer"
        loaded = keras.models.load_model(tmp_path / "model.keras")
    assert max_difference(loaded, x, expected) <= TOLERANCE
