"""End to end, a station whose sheet describes its controls (issue 17): green_channel ("riffle control below
3.70 ft, channel above": control_types riffle;channel and a breakpoint range) goes through every stage with its
segmented candidates in the BaRatin form, and its rating table and equations come from that form."""
import arviz as az
import pandas as pd
import xarray as xr

from conftest import JAX_CACHE
from project import make_project
from test_workflow import Project, snakemake


def test_a_station_described_by_its_controls_runs_in_the_baratin_form(root, tmp_path):
    path = make_project(tmp_path, ["green_channel"], JAX_CACHE)
    sheet = pd.read_csv(path / "config" / "stations.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert sheet.loc[0, "control_types"] == "riffle;channel" and sheet.loc[0, "breakpoints_m"]
    run = snakemake(Project(root, path))
    assert run.returncode == 0, run.stderr[-5000:]
    out = path / "results"
    models = pd.read_csv(out / "fit" / "green_channel.models.csv").set_index("model")
    assert models.loc["seg2", "description"].endswith("each control with its own zero-flow stage (BaRatin form)")
    idata = az.from_netcdf(out / "fit" / "green_channel.nc")
    if idata.attrs["model"] == "seg2":  # the chosen fit carries the upper control's own offset
        assert idata.attrs["structure_segment_offsets"] == 1 and "offset" in idata.posterior
        assert "own zero-flow stage" in idata.attrs["model_description"]
        lo, hi = idata.posterior["breakpoint"].quantile([0.0, 1.0]).values
        assert 0.975 <= lo <= hi <= 1.280  # inside the sheet's range
    table = xr.open_dataset(out / "tables" / "green_channel.nc")
    assert (table["discharge_median_m3s"].diff("stage_m") >= 0).all()
    stations = pd.read_csv(out / "stations.csv").set_index("station_id")
    assert stations.loc["green_channel", "equation"].startswith("Q = ")
