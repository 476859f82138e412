"""The source script's own data code, executed from `legacy/sine_lstm.py` (the script as written).

Only the statements that need nothing but NumPy run: the constants, `generate_data`, and the
lines that build the training and test windows. Parity tests compare tf_sine against these.
`generate_data` reads the global TIMESTEPS, as in the source; `source_generate_data` sets it.
"""

import ast
from pathlib import Path

import numpy as np

LEGACY_SCRIPT = Path(__file__).resolve().parents[1] / "legacy" / "sine_lstm.py"
# Names of the parts that need TensorFlow 0.12 or a display.
_NOT_RUNNABLE = {"tf", "learn", "SKCompat", "array_ops_", "plt", "regressor", "predicted", "rmse",
                 "lstm_model", "plot_predicted", "plot_test"}  # fmt: skip


def _runnable(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return False
    if isinstance(node, ast.FunctionDef) and node.name in _NOT_RUNNABLE:
        return False
    return not any(isinstance(n, ast.Name) and n.id in _NOT_RUNNABLE for n in ast.walk(node))


def load_source() -> dict:
    """Executes the NumPy-only statements of the legacy script; returns its namespace."""
    tree = ast.parse(LEGACY_SCRIPT.read_text(encoding="utf-8"))
    module = ast.Module(body=[node for node in tree.body if _runnable(node)], type_ignores=[])
    namespace = {"np": np}
    exec(compile(module, str(LEGACY_SCRIPT), "exec"), namespace)
    return namespace


SOURCE = load_source()


def source_generate_data(seq, timesteps):
    """Calls the source's `generate_data` with its global TIMESTEPS set to `timesteps`."""
    saved = SOURCE["TIMESTEPS"]
    SOURCE["TIMESTEPS"] = timesteps
    try:
        return SOURCE["generate_data"](seq)
    finally:
        SOURCE["TIMESTEPS"] = saved


def source_windows():
    """The source's (train_X, train_y, test_X, test_y), built by its own lines."""
    return SOURCE["train_X"], SOURCE["train_y"], SOURCE["test_X"], SOURCE["test_y"]
