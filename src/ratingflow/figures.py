"""Drawing the figures (no pipeline I/O): prior curves over the gaugings, and the fitted rating with its
bands and residuals. Used by the prior-check and summarise stages.

Hydrometric convention: discharge on the x axis, stage on the y axis.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .data import StationData  # noqa: E402

GAUGING_STYLE = dict(fmt="o", ms=3.5, color="k", ecolor="0.45", elinewidth=0.8, capsize=0, zorder=5)


_FIGURES: dict = {}


def _figure(kind: str, size):
    """One empty figure per kind, reused from station to station: its canvas keeps the renderer, and with
    it matplotlib's cache of text sizes (tick labels, titles), which a new figure would start empty."""
    fig = _FIGURES.get(kind)
    if fig is None:
        fig = _FIGURES[kind] = Figure(figsize=size)  # not pyplot's: nothing else can close it
        FigureCanvasAgg(fig)  # its own canvas, kept: a temporary one per savefig would drop the renderer
    fig.clear()
    return fig


def _fit_axes():
    """The fit figure's three axes, built once and emptied for each station: new axes (``fig.clear()``, then
    ``subplots``) create every tick, label and transform again, which cost about 40 % of the figure. What does
    not depend on the station (scales, locators, labels, titles, margins) is set here once."""
    fig = _FIGURES.get("fit")
    if fig is not None:
        for ax in fig.axes:
            for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
                artist.remove()
            ax.containers.clear()
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            # the next station's artists set the limits afresh (an axvline would keep the old stage range)
            ax.dataLim = Bbox.null()
            ax.ignore_existing_data_limits = True
            ax.set_autoscale_on(True)
        return fig, fig.axes
    fig = _figure("fit", (15, 4.8))
    axes = fig.subplots(1, 3)
    for ax in axes[:2]:
        ax.set_xlabel("discharge (m³/s)")
    lin, log, res = axes
    lin.set_ylabel("stage (m)")
    lin.set_title("linear axes", fontsize=10, y=1.0)  # y given: no search for room above the ticks
    log.set_xscale("log")
    log.set_yscale("log")
    log.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    log.yaxis.set_minor_formatter(ticker.NullFormatter())
    log.yaxis.set_minor_locator(ticker.LogLocator(subs=(2, 5)))
    log.xaxis.set_minor_locator(ticker.LogLocator(subs=(2, 5)))
    log.set_ylabel("stage above median h0 (m)")
    log.set_title("log axes", fontsize=10, y=1.0)
    res.set_xlabel("residual ln(Q / median curve) × 100 (≈ %)")
    res.set_ylabel("stage (m)")
    res.set_title("residuals against stage", fontsize=10, y=1.0)
    # fixed margins: tight_layout costs more than the rest of the figure
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.11, top=0.88, wspace=0.24)
    # fixed places for the axis labels and titles too: placed automatically, each draw measures every tick label of
    # the axes (with the titles' search for room, about a fifth of the figure's time). Room is left for tick labels
    # of up to 7 characters (1234.56).
    for ax in axes:
        ax.xaxis.set_label_coords(0.5, -0.085)
        ax.yaxis.set_label_coords(-0.165, 0.5)
    return fig, axes


def _error_bars(station: StationData):
    return 2.0 * station.discharge_sd  # about 95 %


def plot_prior(station: StationData, grid: np.ndarray, curves: np.ndarray, verdict: dict, path) -> None:
    """``curves``: prior discharge draws on ``grid`` (draws, G)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    lo, hi = np.quantile(curves, [0.005, 0.995], axis=0)
    ax.fill_betweenx(grid, np.maximum(lo, 1e-12), hi, color="tab:orange", alpha=0.2, label="prior 99 % of curves")
    for draw in curves[:40]:
        ax.plot(np.maximum(draw, 1e-12), grid, color="tab:orange", lw=0.5, alpha=0.6)
    ax.errorbar(station.discharge, station.stage, xerr=_error_bars(station), label="gaugings (±2 SD)", **GAUGING_STYLE)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(ticker.NullLocator())  # minor ticks of many decades cost more than the plot
    q = station.discharge
    ax.set_xlim(q.min() / 1e3, q.max() * 1e3)
    ax.set_xlabel("discharge (m³/s)")
    ax.set_ylabel("stage (m)")
    state = "passed" if verdict["passed"] else "FLAGGED"
    # two lines: one line of this length was clipped at the figure's width
    ax.set_title(
        f"{station.station_id}: prior check {state}\n{verdict['share_inside']:.0%} of gaugings "
        f"inside the prior predictive {verdict['interval']:.0%} range",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.87)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fit(station: StationData, table: pd.DataFrame, h0_median: float, residuals: np.ndarray, prob_label: str,
             path, title: str = "", breakpoints=()) -> None:
    """Rating on linear and log axes with both bands, and residuals against stage.

    ``residuals``: ln(observed / median curve) at each gauging; ``breakpoints``: median stages
    where a new control takes over (dotted lines).
    """
    stage = table["stage_m"].to_numpy()
    median = table["discharge_median_m3s"].to_numpy()
    inside = ~table["extrapolated"].to_numpy(bool)
    curve_lo, curve_hi = (table[f"curve_hpdi{prob_label}_{b}_m3s"].to_numpy() for b in ("lower", "upper"))
    gaug_lo, gaug_hi = (table[f"gauging_hpdi{prob_label}_{b}_m3s"].to_numpy() for b in ("lower", "upper"))

    fig, axes = _fit_axes()
    for ax, log in zip(axes[:2], (False, True)):
        y = stage - h0_median if log else stage
        keep = y > 0 if log else np.ones_like(y, bool)
        ax.fill_betweenx(y[keep], gaug_lo[keep], gaug_hi[keep], color="tab:blue", alpha=0.15,
                         label=f"new gauging, {prob_label} % HPDI")
        ax.fill_betweenx(y[keep], curve_lo[keep], curve_hi[keep], color="tab:blue", alpha=0.35,
                         label=f"curve, {prob_label} % HPDI")
        ax.plot(np.where(inside, median, np.nan)[keep], y[keep], color="tab:blue", lw=1.5, label="median curve")
        ax.plot(np.where(inside, np.nan, median)[keep], y[keep], color="tab:blue", lw=1.2, ls="--",
                label="median, extrapolated")
        ys = station.stage - h0_median if log else station.stage
        ax.errorbar(station.discharge, ys, xerr=_error_bars(station), label="gaugings (±2 SD)", **GAUGING_STYLE)
    axes[0].set_xlim(left=0)
    for k, stage_b in enumerate(breakpoints):
        for ax, y in ((axes[0], stage_b), (axes[1], stage_b - h0_median), (axes[2], stage_b)):
            ax.axhline(y, color="tab:red", lw=0.8, ls=":", label="breakpoint (median)" if k == 0 and ax is axes[0] else None)
    axes[0].legend(fontsize=8, loc="lower right")
    ax = axes[2]
    ax.axvline(0, color="0.3", lw=0.8)
    ax.errorbar(100 * residuals, station.stage, xerr=200 * station.sd_log, **GAUGING_STYLE)
    fig.suptitle(title or station.station_id, fontsize=11)
    # zlib level 1: the same pixels, 6 % larger, a tenth of the figure's time saved (level 6, the default)
    fig.savefig(path, dpi=100, pil_kwargs={"compress_level": 1})


def plot_rating(idata, table: pd.DataFrame, png_path, title: str = "") -> None:
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
    plot_fit(station, table, h0, residuals, labels[0], png_path, title, breaks)


def plot_periods(idata, views: list, table: pd.DataFrame, png_path, title: str = "") -> None:
    """The fit figure of a station with rating periods: gaugings coloured by period with each period's
    curve and 90 % band, and the residuals against time with the shift dates (solid: known; dashed,
    with the interval between the two gaugings around it shaded: detected). With one view (a timeless
    rating chosen over the periods), its curve and every gauging's residual, with the shifts found."""
    import json

    fig, (ax, rx) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.3]})
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(views)))
    const = idata.constant_data
    times = pd.to_datetime(const["gauging_time"].values) if "gauging_time" in const else None
    for p, (view, colour) in enumerate(zip(views, colours)):
        part = table[table["period"] == p + 1]
        label = ("one timeless rating (chosen over rating periods)" if len(views) == 1 else
                 f"period {p + 1}" + (f" from {view.attrs['valid_from'][:10]}" if view.attrs.get("valid_from") else ""))
        ax.plot(part["discharge_median_m3s"], part["stage_m"], color=colour, lw=1.3, label=label)
        ax.fill_betweenx(part["stage_m"], part["curve_hpdi90_lower_m3s"], part["curve_hpdi90_upper_m3s"],
                         color=colour, alpha=0.2, lw=0)
        stage, q = view.constant_data["stage"].values, view.constant_data["discharge"].values
        ax.plot(q, stage, "o", ms=4, color=colour, mec="k", mew=0.4, zorder=5)
        resid = np.log(q / np.interp(stage, part["stage_m"], part["discharge_median_m3s"]))
        if times is not None:
            when = times if len(views) == 1 else times[const["gauging_period"].values == p + 1]
            rx.plot(when, resid, "o", ms=4, color=colour, mec="k", mew=0.4)
    ax.set_xscale("log")
    ax.set_xlabel("discharge (m³/s)")
    ax.set_ylabel("stage (m)")
    ax.legend(fontsize=7, loc="upper left")
    rx.axhline(0, color="0.5", lw=0.8)
    for shift in json.loads(idata.attrs.get("shifts", "[]")):
        if shift["source"] == "known":
            rx.axvline(pd.Timestamp(shift["date"]), color="C3", lw=1.0)
        else:
            rx.axvline(pd.Timestamp(shift["date"]), color="C0", lw=1.0, ls="--")
            rx.axvspan(pd.Timestamp(shift["interval_start"]), pd.Timestamp(shift["interval_end"]), color="C0", alpha=0.15)
    rx.plot([], [], color="C3", label="known shift")
    rx.plot([], [], color="C0", ls="--", label="detected shift (shaded: between these gaugings)")
    rx.legend(fontsize=7, loc="best")
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    rx.xaxis.set_major_locator(locator)
    rx.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    rx.set_ylabel("ln(Q gauged / Q of its period's curve)")
    rx.set_xlabel("date (UTC)")
    fig.suptitle(f"{title or idata.attrs.get('station')} — {idata.attrs.get('model_description', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


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
    import matplotlib.dates as mdates

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
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
