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


def grid_axes(count: int, columns: int = 2) -> list[Axes]:
    """`count` axes in rows of `columns` on one new headless figure (one panel per series)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = -(-count // columns)
    figure = Figure(figsize=(8.0 * min(count, columns), 3.5 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return [figure.add_subplot(rows, min(count, columns), index + 1) for index in range(count)]


def plot_prediction(
    predicted: np.ndarray,
    real: np.ndarray,
    ax: Axes | None = None,
    title: str | None = None,
    times: Sequence[Any] | None = None,
    name: str = "sin",
) -> Axes:
    """Predicted against real values, as the source plotted them ('predicted', 'real_sin').

    Args:
        predicted: predictions, shape `(N,)` or `(N, 1)`.
        real: labels of the same length.
        ax: axes to draw into; a new figure when None.
        title: optional title (e.g. with the RMSE).
        times: the time of each value (dates) for the x axis; default the window number.
        name: what the values are; the real curve is labelled ``real_<name>``.
    """
    ax = ax or new_axes()
    x = np.arange(len(np.ravel(real))) if times is None else list(times)
    ax.plot(x, np.ravel(predicted), label="predicted")
    ax.plot(x, np.ravel(real), label=f"real_{name}", linestyle="--")
    ax.set_xlabel("test window" if times is None else "time")
    ax.set_ylabel("value")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_loss(
    steps: Sequence[int],
    losses: Sequence[float],
    ax: Axes | None = None,
    val_steps: Sequence[int] = (),
    val_losses: Sequence[float] = (),
    best_step: int | None = None,
) -> Axes:
    """Training loss (MSE) by optimizer step, with the validation loss when given, log scale."""
    ax = ax or new_axes()
    ax.plot(steps, losses, linewidth=0.8, label="training loss")
    if len(val_steps):
        ax.plot(val_steps, val_losses, marker=".", label="validation loss")
    if best_step:
        ax.axvline(best_step, color="grey", linestyle=":", label=f"best (step {best_step})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE, model units)")
    ax.legend()
    return ax


def plot_forecast(
    history_times: Sequence[Any],
    history: np.ndarray,
    times: Sequence[Any],
    forecast: np.ndarray,
    truth: np.ndarray | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    band: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> Axes:
    """The end of a series, the forecast that continues it, and the truth where it is known.

    `band`: `(lower, upper, level)`, a prediction interval drawn as a shaded band.
    """
    ax = ax or new_axes()
    ax.plot(list(history_times), history, color="black", linewidth=1.0, label="history")
    if band is not None:
        lower, upper, level = band
        ax.fill_between(list(times), lower, upper, alpha=0.25, label=f"{level:.0%} interval")
    if truth is not None and len(truth):
        ax.plot(list(times)[: len(truth)], truth, color="black", linestyle="--", label="truth")
    ax.plot(list(times), forecast, marker=".", label="forecast")
    ax.set_xlabel("time")
    ax.set_ylabel("value")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_backtest(folds: Sequence[Any], rmse: dict[str, Sequence[float]], ax: Axes | None = None) -> Axes:
    """RMSE of each backtest fold: the model's and each baseline's bars side by side."""
    ax = ax or new_axes()
    positions = np.arange(len(folds))
    width = 0.8 / max(len(rmse), 1)
    for index, (name, values) in enumerate(rmse.items()):
        ax.bar(positions + index * width, values, width, label=name)
    ax.set_xticks(positions + 0.4 - width / 2, [str(fold) for fold in folds])
    ax.set_xlabel("fold")
    ax.set_ylabel("RMSE")
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


def plot_compare(rows: Sequence[dict[str, Any]], ax: Axes | None = None) -> Axes:
    """Test RMSE of each configuration of `tf_sine.experiments.compare`, log scale."""
    ax = ax or new_axes()
    names = [row["name"] for row in rows]
    ax.bar(names, [row["rmse"] for row in rows], color="tab:blue")
    for index, row in enumerate(rows):
        ax.annotate(f"{row['parameters']:,} params\n{row['train_seconds']:.1f} s", (index, row["rmse"]),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylabel("test RMSE (median over seeds)")
    ax.tick_params(axis="x", labelrotation=15)
    return ax


def plot_input_gradients(study: dict[str, dict[str, Any]], ax: Axes | None = None) -> Axes:
    """Input-gradient norm by distance from the output, relative to the last step, log scale.

    Draws each cell of `tf_sine.experiments.gradient_study` at initialisation (dashed) and
    after training (solid), beside the text's 0.99^t and 1.1^t.
    """
    ax = ax or new_axes((8.0, 5.0))
    for index, (cell, result) in enumerate(study.items()):
        color = f"C{index}"
        for stage, style in (("initial", "--"), ("trained", "-")):
            norms = np.asarray(result[stage], dtype=np.float64)[::-1]  # distance 0 = last step
            relative = np.where(norms > 0, norms / norms[0], np.nan)  # 0 (underflow) is not drawn
            ax.plot(relative, style, color=color, label=f"{cell}, {stage}")
    distance = np.arange(len(next(iter(study.values()))["initial"]))
    ax.plot(0.99**distance, ":", color="grey", label="0.99^t")
    ax.plot(1.1**distance, "-.", color="grey", label="1.1^t")
    ax.set_yscale("log")
    ax.set_xlabel("time steps before the output (t)")
    ax.set_ylabel("|d loss / d input_t|, relative to the last step")
    ax.legend(fontsize=8, ncol=2)
    return ax


def plot_clipping_losses(study: dict[str, dict[str, Any]], ax: Axes | None = None) -> Axes:
    """Training loss by step for each clipping option of `tf_sine.experiments.clipping_study`."""
    ax = ax or new_axes()
    for name, result in study.items():
        label = (
            name if result["diverged_at"] is None else f"{name} (diverged at step {result['diverged_at']})"
        )
        ax.plot(result["steps"], result["losses"], linewidth=0.8, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE)")
    ax.legend(fontsize=8)
    return ax


def plot_clipping_norms(study: dict[str, dict[str, Any]], ax: Axes | None = None) -> Axes:
    """Global gradient norm before (dashed) and after (solid) clipping, by step."""
    ax = ax or new_axes()
    for index, (name, result) in enumerate(study.items()):
        color = f"C{index}"
        ax.plot(result["probe_steps"], result["norm_before"], "--", color=color, label=f"{name}, before")
        ax.plot(result["probe_steps"], result["norm_after"], "-", color=color, label=f"{name}, after")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("global gradient norm")
    ax.legend(fontsize=8, ncol=2)
    return ax


def save_figure(ax: Axes, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Writes the figure holding `ax` as a PNG at `path` and returns the path."""
    figure: Any = ax.figure
    figure.savefig(path, dpi=dpi)
    return Path(path)
