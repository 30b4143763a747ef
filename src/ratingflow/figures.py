"""Drawing the figures (no pipeline I/O): prior curves over the gaugings, the fitted rating with its bands and
residuals, the rating periods, written as SVG text (:mod:`ratingflow.svgplot`, a few milliseconds each: they are
drawn for every station); the hydrograph of a discharge series with matplotlib (PNG). Used by the prior-check,
summarise and discharge stages.

Hydrometric convention: discharge on the x axis, stage on the y axis.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .data import StationData

#: the gaugings' style in the hydrograph (matplotlib's errorbar)
GAUGING_STYLE = dict(fmt="o", ms=3.5, color="k", ecolor="0.45", elinewidth=0.8, capsize=0, zorder=5)


def _error_bars(station: StationData):
    return 2.0 * station.discharge_sd  # about 95 %


#: the prior figure's size in pixels, and its panel's box (left, top, width, height)
PRIOR_SIZE = (650, 450)
PRIOR_PANEL = (80, 62, 548, 334)


def plot_prior(station: StationData, grid: np.ndarray, curves: np.ndarray, verdict: dict, path) -> None:
    """Prior curves over the gaugings, as SVG (:mod:`ratingflow.svgplot`). ``curves``: prior discharge draws on
    ``grid`` (draws, G)."""
    from . import svgplot
    from .svgplot import Axes

    orange = "#ff7f0e"
    ax = Axes(PRIOR_PANEL, xlog=True, name="prior")
    lo, hi = np.quantile(curves, [0.005, 0.995], axis=0)
    ax.band_x(grid, np.maximum(lo, 1e-12), hi, orange, 0.2, "prior 99 % of curves")
    for draw in curves[:40]:
        ax.line(np.maximum(draw, 1e-12), grid, orange, 0.5, opacity=0.6)
    ax.points(station.discharge, station.stage, _error_bars(station), label="gaugings (±2 SD)")
    q = station.discharge
    ax.xlim = [q.min() / 1e3, q.max() * 1e3]
    state = "passed" if verdict["passed"] else "FLAGGED"
    title = (f"{station.station_id}: prior check {state}\n{verdict['share_inside']:.0%} of gaugings "
             f"inside the prior predictive {verdict['interval']:.0%} range")
    panel = ax.svg("", "discharge (m³/s)", "stage (m)", legend="lower right")
    svgplot.write(path, svgplot.document(*PRIOR_SIZE, [panel], title))


#: the fit figure's size in pixels, and its panels' boxes (left, top, width, height)
FIT_SIZE = (1500, 480)
FIT_PANELS = [(90 + k * 497, 58, 401, 370) for k in range(3)]


def plot_fit(station: StationData, table: pd.DataFrame, h0_median: float, residuals: np.ndarray, prob_label: str,
             path, title: str = "", breakpoints=()) -> None:
    """Rating on linear and log axes with both bands, and residuals against stage, written as SVG
    (:mod:`ratingflow.svgplot`: a few milliseconds a station, where matplotlib took about 0.11 s).

    ``residuals``: ln(observed / median curve) at each gauging; ``breakpoints``: median stages
    where a new control takes over (dotted lines).
    """
    from . import svgplot
    from .svgplot import BLUE, RED, Axes

    stage = table["stage_m"].to_numpy(float)
    median = table["discharge_median_m3s"].to_numpy(float)
    inside = ~table["extrapolated"].to_numpy(bool)
    curve_lo, curve_hi = (table[f"curve_hpdi{prob_label}_{b}_m3s"].to_numpy(float) for b in ("lower", "upper"))
    gaug_lo, gaug_hi = (table[f"gauging_hpdi{prob_label}_{b}_m3s"].to_numpy(float) for b in ("lower", "upper"))

    lin = Axes(FIT_PANELS[0], name="linear")
    log = Axes(FIT_PANELS[1], xlog=True, ylog=True, name="log")
    res = Axes(FIT_PANELS[2], name="residuals")
    for ax, logged in ((lin, False), (log, True)):
        y = stage - h0_median if logged else stage
        keep = y > 0 if logged else np.ones_like(y, bool)
        ax.band_x(y[keep], gaug_lo[keep], gaug_hi[keep], BLUE, 0.15, f"new gauging, {prob_label} % HPDI")
        ax.band_x(y[keep], curve_lo[keep], curve_hi[keep], BLUE, 0.35, f"curve, {prob_label} % HPDI")
        ax.line(np.where(inside, median, np.nan)[keep], y[keep], BLUE, 1.5, label="median curve")
        ax.line(np.where(inside, np.nan, median)[keep], y[keep], BLUE, 1.2, dash="5,3", label="median, extrapolated")
        ys = station.stage - h0_median if logged else station.stage
        ax.points(station.discharge, ys, _error_bars(station), label="gaugings (±2 SD)")
    lin.xlim[0] = 0.0
    for k, stage_b in enumerate(breakpoints):
        for ax, y in ((lin, stage_b), (log, stage_b - h0_median), (res, stage_b)):
            ax.hline(y, RED, dash="1.5,2.5", label="breakpoint (median)" if k == 0 and ax is lin else "")
    res.vline(0.0, "#4d4d4d")
    res.points(100 * residuals, station.stage, 200 * station.sd_log)
    panels = [lin.svg("linear axes", "discharge (m³/s)", "stage (m)", legend="lower right"),
              log.svg("log axes", "discharge (m³/s)", "stage above median h0 (m)"),
              res.svg("residuals against stage", "residual ln(Q / median curve) × 100 (≈ %)", "stage (m)")]
    svgplot.write(path, svgplot.document(*FIT_SIZE, panels, title or station.station_id))


def plot_rating(idata, table: pd.DataFrame, path, title: str = "") -> None:
    """The fit figure of one station from its InferenceData and rating table."""
    from .posterior import breakpoint_medians

    const = idata.constant_data
    station = StationData(
        idata.attrs["station"], const["stage"].values, const["discharge"].values, const["discharge_sd"].values
    )
    h0 = float(idata.posterior["h0"].median())
    median_at_gaugings = np.interp(station.stage, table["stage_m"], table["discharge_median_m3s"])
    residuals = np.log(station.discharge / median_at_gaugings)
    labels = sorted({c.split("_")[1][4:] for c in table.columns if c.startswith("curve_hpdi")}, key=int)
    breaks = breakpoint_medians(idata.posterior)
    title = f"{title or station.station_id} — {idata.attrs.get('model_description', '')}"
    if table.attrs.get("mixture_weights"):
        title += f" (bands: {table.attrs['mixture_weights']} by stacking weight)"
    plot_fit(station, table, h0, residuals, labels[0], path, title, breaks)


#: the periods figure's size in pixels, and its two panels' boxes (left, top, width, height)
PERIODS_SIZE = (1200, 480)
PERIODS_PANELS = [(80, 55, 430, 360), (620, 55, 560, 360)]


def plot_periods(idata, views: list, table: pd.DataFrame, path, title: str = "") -> None:
    """The fit figure of a station with rating periods, as SVG (:mod:`ratingflow.svgplot`): gaugings coloured by
    period with each period's curve and 90 % band, and the residuals against time with the shift dates (solid: known;
    dashed, with the interval between the two gaugings around it shaded: detected). With one view (a timeless
    rating chosen over the periods), its curve and every gauging's residual, with the shifts found."""
    import json

    from . import svgplot
    from .svgplot import BLUE, RED, Axes

    ax = Axes(PERIODS_PANELS[0], xlog=True, name="curves")
    rx = Axes(PERIODS_PANELS[1], name="residuals", xdates=True)
    const = idata.constant_data
    times = svgplot.days(pd.to_datetime(const["gauging_time"].values)) if "gauging_time" in const else None
    for p, (view, colour) in enumerate(zip(views, svgplot.sequence_colours(len(views)))):
        part = table[table["period"] == p + 1]
        label = ("one timeless rating (chosen over rating periods)" if len(views) == 1 else
                 f"period {p + 1}" + (f" from {view.attrs['valid_from'][:10]}" if view.attrs.get("valid_from") else ""))
        stage_grid = part["stage_m"].to_numpy(float)
        ax.band_x(stage_grid, part["curve_hpdi90_lower_m3s"].to_numpy(float),
                  part["curve_hpdi90_upper_m3s"].to_numpy(float), colour, 0.2)
        ax.line(part["discharge_median_m3s"].to_numpy(float), stage_grid, colour, 1.3, label=label)
        stage, q = view.constant_data["stage"].values, view.constant_data["discharge"].values
        ax.points(q, stage, colour=colour, radius=3.0, edge="#000000")
        resid = np.log(q / np.interp(stage, stage_grid, part["discharge_median_m3s"].to_numpy(float)))
        if times is not None:
            when = times if len(views) == 1 else times[const["gauging_period"].values == p + 1]
            rx.points(when, resid, colour=colour, radius=3.0, edge="#000000")
    rx.hline(0.0, "#808080")
    for shift in json.loads(idata.attrs.get("shifts", "[]")):
        date = float(svgplot.days([pd.Timestamp(shift["date"])])[0])
        if shift["source"] == "known":
            rx.vline(date, RED, 1.0)
        else:
            rx.vline(date, BLUE, 1.0, dash="5,3")
            start, end = svgplot.days([pd.Timestamp(shift["interval_start"]), pd.Timestamp(shift["interval_end"])])
            rx.vspan(start, end, BLUE, 0.15)
    rx.legend_entry("line", "known shift", RED)
    rx.legend_entry("line", "detected shift (shaded: between these gaugings)", BLUE, dash="5,3")
    panels = [ax.svg("", "discharge (m³/s)", "stage (m)", legend="upper left"),
              rx.svg("", "date (UTC)", "ln(Q gauged / Q of its period's curve)", legend="upper left")]
    title = f"{title or idata.attrs.get('station')} — {idata.attrs.get('model_description', '')}"
    svgplot.write(path, svgplot.document(*PERIODS_SIZE, panels, title))


#: points drawn per hydrograph line at most (a long record is thinned for the figure, never for the files)
HYDROGRAPH_POINTS = 6000


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def plot_hydrograph(table: pd.DataFrame, gaugings: pd.DataFrame | None, limits: pd.DataFrame, path, title: str) -> None:
    """The discharge series with its 95 and 90 % bands, the gaugings on top (with their 95 % error bars) and the
    stretches above the gauged range (orange), beyond the limit (red, no discharge) and without stage (grey);
    below, the stage with each period's gauged range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from .dates import to_utc_naive

    fig, (ax, sx) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    t = pd.to_datetime(table["time"].str.rstrip("Z"))
    step = max(1, len(table) // HYDROGRAPH_POINTS)
    thin = slice(None, None, step)
    probs = sorted({c.split("_")[1] for c in table.columns if c.startswith("discharge_hpdi")}, key=lambda s: -int(s[4:]))
    for label, alpha in zip(probs, (0.18, 0.32)):
        lo, hi = table[f"discharge_{label}_lower_m3s"], table[f"discharge_{label}_upper_m3s"]
        if step > 1:  # the envelope of each thinned bin, so that no peak is lost
            groups = np.arange(len(table)) // step
            lo, hi = lo.groupby(groups).min().to_numpy(), hi.groupby(groups).max().to_numpy()
            tt = t.groupby(groups).first()
        else:
            tt = t
        ax.fill_between(tt, lo, hi, color="tab:blue", alpha=alpha, lw=0, label=f"{label[4:]} % HPDI", step="mid")
    ax.plot(t[thin], table["discharge_median_m3s"][thin], color="tab:blue", lw=0.8, label="median")
    if gaugings is not None and len(gaugings) and "datetime" in gaugings:
        when = to_utc_naive(gaugings["datetime"])
        inside = when.notna() & (when >= t.min()) & (when <= t.max())
        if inside.any():
            g = gaugings[inside.to_numpy()]
            ax.errorbar(when[inside], g["discharge_m3s"], yerr=2 * g["discharge_sd_m3s"], label="gaugings", **GAUGING_STYLE)
    flags = table["flags"].fillna("")
    for name, colour, label in (("above_gauged", "tab:orange", "above the gauged range"),
                                ("beyond_limit", "tab:red", "beyond the limit: no discharge"),
                                ("missing_stage", "0.6", "no stage")):
        mask = flags.str.contains(name).to_numpy()
        for k, (a, b) in enumerate(_runs(mask)):
            for axis in (ax, sx):
                axis.axvspan(t.iloc[a], t.iloc[b], color=colour, alpha=0.25, lw=0, label=label if k == 0 and axis is ax else None)
    sx.plot(t[thin], table["stage_m"][thin], color="k", lw=0.7)
    for row in limits.itertuples():
        start = pd.Timestamp(row.valid_from) if row.valid_from else t.min()
        end = pd.Timestamp(row.valid_to) if row.valid_to else t.max()
        if end < t.min() or start > t.max():
            continue
        start, end = max(start, t.min()), min(end, t.max())
        sx.fill_between([start, end], row.gauged_min_m, row.gauged_max_m, color="tab:green", alpha=0.15, lw=0,
                        label="gauged range" if row.period == 1 else None)
        sx.hlines(row.limit_m, start, end, color="tab:red", lw=0.8, ls="--", label="limit" if row.period == 1 else None)
    ax.set_ylabel("discharge (m$^3$/s)")
    sx.set_ylabel("stage (m)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right", ncol=3)
    sx.legend(fontsize=8, loc="upper right")
    sx.xaxis.set_major_formatter(mdates.ConciseDateFormatter(sx.xaxis.get_major_locator()))
    # fixed margins: tight_layout draws the figure once more to measure it (about a third of its time)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.08, top=0.95, hspace=0.06)
    fig.savefig(path, dpi=90)
    plt.close(fig)
