"""Executes the notebooks in place, storing their outputs (figures included).

    python notebooks/run.py                 # the sizes whose outputs are committed
    TF_SINE_FAST=1 python notebooks/run.py  # seconds-long runs (what the tests execute)

`make notebooks` runs the first form.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parent
NOTEBOOKS = ("01_sine_lstm.ipynb", "02_rnn_lstm_gru.ipynb", "03_forecasting.ipynb")


def execute(path: Path, output: Path | None = None, timeout: int = 1800) -> nbformat.NotebookNode:
    """Runs every cell of the notebook at `path` from a fresh kernel; writes it to `output`."""
    notebook = nbformat.read(path, as_version=4)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    if output is not None:
        nbformat.write(notebook, output)
    return notebook


if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        print(f"executing {name}", flush=True)
        execute(FOLDER / name, FOLDER / name)
