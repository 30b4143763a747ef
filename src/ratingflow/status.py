"""Station status: a station that cannot be fitted still gets every output, marked as skipped.

The station list comes from the sheet at load time (no checkpoints), so every stage writes its
outputs for every station. A station whose gaugings could not be read, or that has too few, gets
placeholder outputs that carry the reason; the report shows it, and the other stations go on.
"""
from __future__ import annotations

OK = "ok"


def skip_reason(status: dict) -> str:
    """'' when the station can be fitted, else the reason shown in the report."""
    if status.get("status") == OK:
        return ""
    return f"{status.get('status')}: {status.get('message')}"


def empty_idata(station: str, reason: str):
    import arviz as az

    return az.InferenceData(attrs={"station": station, "skipped": reason})


def skipped(idata) -> str:
    """The reason an InferenceData is a placeholder, or ''."""
    return str(idata.attrs.get("skipped", "")) if not idata.groups() else ""


def skipped_file(path) -> str:
    """:func:`skipped` of the InferenceData in a netCDF file, from its groups' names and root attributes only."""
    import netCDF4

    with netCDF4.Dataset(path, mode="r") as nc:
        return "" if nc.groups else str(getattr(nc, "skipped", ""))


def placeholder_png(path, station: str, reason: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{station}: not fitted\n{reason}", ha="center", va="center", wrap=True, fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
