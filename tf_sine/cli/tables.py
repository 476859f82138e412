"""The tables and lines the commands print: scores beside the baselines, by horizon, intervals
and forecasts."""

from __future__ import annotations

from typing import Any


def format_metrics(metrics: dict[str, Any]) -> str:
    """The test scores, then the baselines' RMSE on the same targets (when computed)."""
    lines = [
        f"test RMSE {metrics['rmse']:.6f} (root mean squared error; the source printed it as "
        f"'Mean Square Error'), MSE {metrics['mse']:.3e}, MAE {metrics['mae']:.6f}"
    ]
    if "smape" in metrics:
        omitted = f" ({metrics['mape_omitted']})" if "mape_omitted" in metrics else ""
        lines.append("scale-free: " + _scale_free(metrics) + omitted)
    if metrics.get("baselines"):
        lines.append(
            "baselines, same test targets: "
            + format_baselines(metrics["baselines"], metrics.get("period"), metrics.get("baseline_metrics"))
        )
    if metrics.get("filled"):
        lines.append(f"{metrics['filled']} filled values of the series are never scored as truth")
    return "\n".join(lines)


def _scale_free(scores: dict[str, Any]) -> str:
    """``MASE 0.41, sMAPE 2.3%, MAPE 2.2%`` (MASE without a scale, MAPE where omitted: left out)."""
    shown = [f"MASE {scores['mase']:.3g}"] if scores.get("mase") is not None else []
    shown.append(f"sMAPE {scores['smape']:.3g}%")
    if "mape" in scores:
        shown.append(f"MAPE {scores['mape']:.3g}%")
    return ", ".join(shown)


def format_baselines(
    baselines: dict[str, float], period: int | None, scores: dict[str, dict[str, Any]] | None = None
) -> str:
    """``persistence RMSE 0.0072, seasonal naive (period 628) RMSE 0.0058, mean RMSE 0.69``, each
    with its scale-free scores in parentheses where `scores` (name -> scores) has them."""
    season = f"period {period}" if period else "each series' period"  # several series: one each
    names = {"persistence": "persistence", "seasonal_naive": f"seasonal naive ({season})",
             "mean": "training mean"}  # fmt: skip
    scores = scores or {}
    shown = [
        f"{names[name]} RMSE {value:.6g}" + (f" ({_scale_free(scores[name])})" if name in scores else "")
        for name, value in baselines.items()
        if name in names
    ]
    if "seasonal_naive" not in baselines:
        shown.append("no seasonal naive (no season found; give --period)" if not period
                     else f"no seasonal naive (the history is shorter than the period {period})")  # fmt: skip
    return ", ".join(shown)


def format_interval(interval: dict[str, Any]) -> str:
    """``90% intervals (split conformal): test coverage by horizon 1: 0.91 (width 1.2), ...``."""
    steps = zip(interval["coverage_by_horizon"], interval["half_width_by_horizon"], strict=True)
    shown = ", ".join(
        f"{h}: {cover:.3f} (half-width {width:.4g})" for h, (cover, width) in enumerate(steps, 1)
    )
    level = f"{interval['level']:.0%}"
    return f"{level} intervals (split conformal, validation part): test coverage by horizon {shown}"


def format_horizon_table(scores: dict[str, Any], rows: int = 24) -> str:
    """RMSE by horizon, the model (rolled out, and a direct model's own forecasts) beside the
    baselines: at most `rows` rows, spread to the longest."""
    names, model = list(scores["baselines_by_horizon"]), scores["rmse_by_horizon"]
    # The first half of the rows horizon by horizon, the rest spread to the longest.
    half, last = rows // 2, len(model) - 1
    shown = sorted({*range(min(len(model), half)), *(round(i * last / (half - 1)) for i in range(half))})
    some = f", {len(shown)} of {len(model)} horizons" if len(shown) < len(model) else ""
    direct = scores.get("direct_rmse_by_horizon")
    header = f"{'h':>5} {'model':>12} " + (f"{'direct':>12} " if direct else "")
    lines = [f"RMSE by horizon on the {scores['targets']} test targets (rolled out, series units{some}):",
             header + " ".join(f"{name:>15}" for name in names)]  # fmt: skip
    for h in shown:
        row = " ".join(f"{scores['baselines_by_horizon'][name][h]:>15.6g}" for name in names)
        beside = "" if not direct else f"{direct[h]:>12.6g} " if h < len(direct) else f"{'':>12} "
        lines.append(f"{h + 1:>5} {model[h]:>12.6g} {beside}{row}")
    return "\n".join(lines)


def format_series_table(series: dict[str, dict[str, Any]], rows: int = 24) -> str:
    """Each series' test RMSE and MASE beside persistence's (the first `rows` series)."""
    lines = [f"by series ({len(series)}{', the first ' + str(rows) if len(series) > rows else ''}):",
             f"{'series':>16} {'RMSE':>12} {'MASE':>8} {'persistence RMSE':>17} {'MASE':>8}"]  # fmt: skip
    for key, scores in list(series.items())[:rows]:
        naive = scores["baseline_metrics"]["persistence"]
        lines.append(f"{key:>16} {scores['rmse']:>12.6g} {_number(scores['mase']):>8} "
                     f"{naive['rmse']:>17.6g} {_number(naive['mase']):>8}")  # fmt: skip
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_forecast(forecast: Any, series_id: str | None = None) -> str:
    """The forecast's header line, then ``time: value [lower, upper]`` for each step."""
    labels = forecast.labels()
    bounds = [""] * forecast.horizon
    if forecast.lower is not None:
        bounds = [
            f" [{low:.6g}, {high:.6g}]" for low, high in zip(forecast.lower, forecast.upper, strict=True)
        ]
    steps = zip(labels[1:], forecast.values, bounds, strict=True)
    what = forecast.name if series_id is None else f"{forecast.name} of series {series_id!r}"
    return (f"forecast of {forecast.horizon} steps after {labels[0]} ({what}, {forecast.method}):\n"
            + ", ".join(f"{label}: {value:.6g}{bound}" for label, value, bound in steps))  # fmt: skip
