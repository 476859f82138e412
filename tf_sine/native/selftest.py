"""The numerical self-test a freshly compiled kernel library must pass before it is cached or used.

`python -m tf_sine.native.selftest LIBRARY` loads LIBRARY in a process of its own (a library
that crashes, or registers wrong ops, never enters the caller's process), runs the forward and
the gradient op of each cell on small inputs, and compares them with the cell's equations
written in plain TensorFlow ops and differentiated by `tf.GradientTape`. It prints one JSON
line, ``{"passed": bool, "max_error": float, "cases": int, "failure": str | null}``, and exits
0 when every value and gradient agrees within tolerance and NaN spreads as in the equations,
1 when something disagrees (`SelfTestError`, named in "failure").

The reference is independent of Keras and of the kernels' C++; `tests/test_native.py` also
compares the ops with Keras's own layers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import numpy as np

# (time steps, batch, features, units): one step (the legacy layout); several steps whose units
# leave a remainder after any vector width (4, 8 or 16 floats), which products.h leaves to Eigen;
# and kernels whose widths, and features, are whole register tiles (products.h's own path, for the
# recurrence, the input projection and the inputs' gradient), with a batch of a full tile of rows
# and a remainder.
CASES = ((1, 3, 10, 7), (4, 5, 2, 33), (3, 7, 64, 64))
# An LSTM wide enough that its projection and weight gradients go a few steps at a time (cells.h's
# CachedSteps: 3 of the 5 steps here, then 2), with features that make whole tiles, so that the
# inputs' gradient of each piece takes them too. A SimpleRNN of this width, with these random
# weights, amplifies float32 rounding beyond the tolerance within five steps.
EXTRA_CASES = {"lstm": ((5, 40, 64, 128),)}
RTOL, ATOL = 1e-4, 2e-5
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}  # the kernel is (features, gates * units)


class SelfTestError(Exception):
    """An op's output disagrees with the reference, or an op is missing."""


def _reference_step(cell: str) -> Callable:
    """One time step of `cell` as Keras defines it: `(x, h, c, kernel, recurrent, bias) -> (h, c)`."""
    import tensorflow as tf

    def lstm(x, h, c, kernel, recurrent, bias):
        i, f, g, o = tf.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)  # gate order i, f, c, o
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def gru(x, h, c, kernel, recurrent, bias):  # reset_after=True: bias is (input bias, recurrent bias)
        x_z, x_r, x_h = tf.split(x @ kernel + bias[0], 3, axis=-1)
        h_z, h_r, h_h = tf.split(h @ recurrent + bias[1], 3, axis=-1)
        z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
        return z * h + (1 - z) * tf.tanh(x_h + r * h_h), c

    def simple_rnn(x, h, c, kernel, recurrent, bias):
        return tf.tanh(x @ kernel + bias + h @ recurrent), c

    return {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn}[cell]


def _reference_states(cell: str, inputs, kernel, recurrent, bias):
    """Hidden states (T, B, u) of `cell` over time-major `inputs` (T, B, F), zero initial state."""
    import tensorflow as tf

    step = _reference_step(cell)
    h = c = tf.zeros([inputs.shape[1], recurrent.shape[0]])
    states = []
    for x in tf.unstack(inputs):
        h, c = step(x, h, c, kernel, recurrent, bias)
        states.append(h)
    return tf.stack(states)


def _weights(cell: str, features: int, units: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Kernel (F, gates*u), recurrent kernel (u, gates*u) and bias ((2, 3u) for GRU, else (gates*u,))."""
    gates = GATES[cell]
    bias_shape = (2, 3 * units) if cell == "gru" else (gates * units,)
    return [
        rng.uniform(-0.5, 0.5, (features, gates * units)).astype(np.float32),
        rng.uniform(-0.5, 0.5, (units, gates * units)).astype(np.float32),
        rng.normal(0.0, 0.3, bias_shape).astype(np.float32),
    ]


def _max_error(mine, reference, what: str) -> float:
    """The largest |mine - reference|; raises SelfTestError naming `what` beyond tolerance."""
    mine, reference = np.asarray(mine, np.float64), np.asarray(reference, np.float64)
    if mine.shape != reference.shape:
        raise SelfTestError(f"{what}: shape {mine.shape}, expected {reference.shape}")
    error = np.abs(mine - reference)
    if not np.all(error <= ATOL + RTOL * np.abs(reference)):
        raise SelfTestError(f"{what}: off by up to {error.max():.3g}")
    return float(error.max())


def _check_values_and_gradients(ops, cell: str, time: int, batch: int, features: int, units: int) -> float:
    """Compares the op's states (T, B, u) and its gradients for inputs (T, B, F) and every weight
    with the reference's under one upstream gradient (T, B, u); returns the largest difference."""
    import tensorflow as tf

    rng = np.random.default_rng(units)
    inputs = tf.constant(rng.normal(size=(time, batch, features)).astype(np.float32))
    weights = [tf.constant(w) for w in _weights(cell, features, units, rng)]
    upstream = tf.constant(rng.normal(size=(time, batch, units)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch([inputs, *weights])
        expected = _reference_states(cell, inputs, *weights)
        loss = tf.reduce_sum(expected * upstream)
    expected_grads = tape.gradient(loss, [inputs, *weights])

    name = f"tf_sine_{cell}"
    outputs = getattr(ops, name)(inputs, *weights)
    states, *saved = [outputs] if isinstance(outputs, tf.Tensor) else outputs
    grads = getattr(ops, name + "_grad")(inputs, weights[0], weights[1], states, *saved, upstream)
    case = f"{name} (T={time}, B={batch}, F={features}, u={units})"
    errors = [_max_error(states, expected, f"{case} states")]
    for label, mine, reference in zip(("inputs", "kernel", "recurrent_kernel", "bias"), grads, expected_grads,
                                      strict=True):  # fmt: skip
        errors.append(_max_error(mine, reference, f"{case} gradient of {label}"))
    return max(errors)


def _check_nan_spreads(ops, cell: str) -> None:
    """A NaN in one window's inputs makes that window's states NaN and no other's: the divergence
    check relies on it, and -ffast-math style builds break it."""
    import tensorflow as tf

    inputs = np.ones((3, 2, 2), np.float32)
    inputs[0, 1, 0] = np.nan
    weights = _weights(cell, 2, 5, np.random.default_rng(0))
    outputs = getattr(ops, f"tf_sine_{cell}")(tf.constant(inputs), *weights)
    states = (outputs if isinstance(outputs, tf.Tensor) else outputs[0]).numpy()
    if not (np.isnan(states[:, 1]).all() and np.isfinite(states[:, 0]).all()):
        raise SelfTestError(f"tf_sine_{cell}: a NaN input did not spread to its window alone")


def run(ops) -> dict:
    """Checks every op of the loaded library `ops`; returns the JSON summary (see module docstring)."""
    from tf_sine.native import FAMILIES

    errors, cases = [], 0
    try:
        for cell in FAMILIES:
            for case in CASES + EXTRA_CASES.get(cell, ()):
                errors.append(_check_values_and_gradients(ops, cell, *case))
                cases += 1
            _check_nan_spreads(ops, cell)
            cases += 1
    except (SelfTestError, AttributeError) as error:
        return {"passed": False, "max_error": max(errors, default=0.0), "cases": cases, "failure": str(error)}
    return {"passed": True, "max_error": max(errors), "cases": cases, "failure": None}


def main(argv: list[str] | None = None) -> int:
    """Self-tests the library named by ``argv[0]``; returns the exit status."""
    import tensorflow as tf

    argv = sys.argv[1:] if argv is None else argv
    summary = run(tf.load_op_library(argv[0]))
    print(json.dumps(summary))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
