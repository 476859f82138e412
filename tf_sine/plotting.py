"""Every figure tf_sine draws. The only module that imports matplotlib.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never through `pyplot`:
no global state, no window, no `plt.show()`, so plotting works on a headless machine. Each
`plot_*` function draws into `ax` when given (and returns it), or into a new figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def new_axes(figsize: tuple[float, float] = (8.0, 4.0)) -> Axes:
    """Axes on a new, headless (Agg) figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def plot_prediction(
    predicted: np.ndarray, real: np.ndarray, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Predicted against real values, as the source plotted them ('predicted', 'real_sin').

    Args:
        predicted: predictions, shape `(N,)` or `(N, 1)`.
        real: labels of the same length.
        ax: axes to draw into; a new figure when None.
        title: optional title (e.g. with the RMSE).
    """
    ax = ax or new_axes()
    ax.plot(np.ravel(predicted), label="predicted")
    ax.plot(np.ravel(real), label="real_sin", linestyle="--")
    ax.set_xlabel("test window")
    ax.set_ylabel("value")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_loss(steps: Sequence[int], losses: Sequence[float], ax: Axes | None = None) -> Axes:
    """Training loss (MSE) by optimizer step, on a log scale."""
    ax = ax or new_axes()
    ax.plot(steps, losses, linewidth=0.8, label="training loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE)")
    ax.legend()
    return ax


def plot_scaling(
    rows: Sequence[dict[str, Any]], x_key: str, y_key: str, label: str, ax: Axes | None = None
) -> Axes:
    """One benchmark series: `y_key` against `x_key` of `rows`, both axes logarithmic."""
    ax = ax or new_axes()
    ax.plot([row[x_key] for row in rows], [row[y_key] for row in rows], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel(y_key.replace("_", " "))
    ax.legend()
    return ax


def save_figure(ax: Axes, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Writes the figure holding `ax` as a PNG at `path` and returns the path."""
    figure: Any = ax.figure
    figure.savefig(path, dpi=dpi)
    return Path(path)
