"""Station status: a station that cannot be fitted still gets every output, marked as skipped.

The station list comes from the sheet at load time (no checkpoints), so every stage writes its
outputs for every station. A station whose gaugings could not be read, or that has too few, gets
placeholder outputs that carry the reason; the report shows it, and the other stations go on.
"""
from __future__ import annotations

import textwrap
from html import escape

OK = "ok"


def skip_reason(status: dict) -> str:
    """'' when the station can be fitted, else the reason shown in the report."""
    if status.get("status") == OK:
        return ""
    return f"{status.get('status')}: {status.get('message')}"


def empty_idata(station: str, reason: str):
    from .idata import FitData

    return FitData(attrs={"station": station, "skipped": reason})


def skipped(idata) -> str:
    """The reason an InferenceData is a placeholder, or ''."""
    return str(idata.attrs.get("skipped", "")) if not idata.groups() else ""


def skipped_file(path) -> str:
    """:func:`skipped` of the InferenceData in a netCDF file, from its groups' names and root attributes only."""
    import netCDF4

    with netCDF4.Dataset(path, mode="r") as nc:
        return "" if nc.groups else str(getattr(nc, "skipped", ""))


def placeholder_figure(path, station: str, reason: str) -> None:
    """The figure (SVG) of a station that was not fitted: its name and the reason."""
    from . import svgplot

    lines = [f"{station}: not fitted", *textwrap.wrap(reason, 80)][:8]
    text = "".join(f'<text x="325" y="{130 + 20 * k - 10 * (len(lines) - 1)}" text-anchor="middle" font-size="14">'
                   f"{escape(line)}</text>" for k, line in enumerate(lines))
    svgplot.write(path, svgplot.document(650, 250, [text]))
