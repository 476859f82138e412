"""The notebooks run top to bottom (fast mode), and the committed ones carry their figures."""

import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import run  # noqa: E402

# Printed only at TF_SINE_FAST=1's sizes.
FAST_SIGN = {"01_sine_lstm.ipynb": "100 steps in", "02_rnn_lstm_gru.ipynb": "T=5 ",
             "03_forecasting.ipynb": "100 steps, horizon 8"}  # fmt: skip


def _text(notebook) -> str:
    return "".join(
        str(output.get("text", "")) for cell in notebook.cells for output in cell.get("outputs", [])
    )


def _images(notebook) -> int:
    return sum(
        1 for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    )  # fmt: skip


@pytest.mark.parametrize("name", run.NOTEBOOKS)
def test_notebook_executes_without_errors_in_fast_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_SINE_FAST", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    copy = tmp_path / name
    copy.write_bytes((NOTEBOOKS / name).read_bytes())
    executed = run.execute(copy, timeout=600)  # nbclient raises CellExecutionError on any error
    assert _images(executed) >= 2
    # It ran, and at the fast sizes: the committed outputs are full-size, these are not.
    assert FAST_SIGN[name] in _text(executed) and FAST_SIGN[name] not in _text(
        nbformat.read(NOTEBOOKS / name, 4)
    )


@pytest.mark.parametrize("name", run.NOTEBOOKS)
def test_committed_notebooks_hold_their_figures(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert _images(notebook) >= 2
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code), "every code cell was executed"
    errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    source = "\n".join(cell.source for cell in code)
    assert "keras.layers." not in source and "class " not in source  # no model code of their own
