"""Pipeline stage ``plots``: the fit figure of each station of a batch (drawing in :mod:`ratingflow.figures`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import status
from .data import StationData
from .figures import plot_fit
from .io import load_idata
from .posterior import breakpoint_medians


def run(fit_nc, table_csv, png_path, title: str = "") -> None:
    """Pipeline step: the fit figure of one station."""
    idata = load_idata(fit_nc)
    if status.skipped(idata):
        status.placeholder_png(png_path, idata.attrs.get("station", ""), status.skipped(idata))
        return
    const = idata.constant_data
    station = StationData(
        idata.attrs["station"], const["stage"].values, const["discharge"].values, const["discharge_sd"].values
    )
    table = pd.read_csv(table_csv)
    h0 = float(idata.posterior["h0"].median())
    median_at_gaugings = np.interp(station.stage, table["stage_m"], table["discharge_median_m3s"])
    residuals = np.log(station.discharge / median_at_gaugings)
    labels = sorted({c.split("_")[1][4:] for c in table.columns if c.startswith("curve_hpdi")}, key=int)
    breaks = breakpoint_medians(idata.posterior)
    title = f"{title or station.station_id} — {idata.attrs.get('model_description', '')}"
    plot_fit(station, table, h0, residuals, labels[0], png_path, title, breaks)


def run_batch(fit_paths, table_paths, png_paths, titles) -> None:
    """Pipeline step for a batch of stations (one process, see :mod:`ratingflow.batches`)."""
    for args in zip(fit_paths, table_paths, png_paths, titles):
        run(*args)
