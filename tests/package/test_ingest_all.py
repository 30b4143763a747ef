"""Every real gauging file parses with a sheet row only."""
import numpy as np
import pandas as pd
import pytest

from ratingflow.clean import clean
from ratingflow.sheet import load_sheet

DATA = __import__("pathlib").Path(__file__).parents[1] / "data" / "gaugings"
SHEET = load_sheet(DATA / "sheet.tsv", DATA)
EXPECT = pd.read_csv(DATA / "sheet.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("station_id")
DEFAULT = {"kind": "percent_2sd", "value": 7}


def test_there_are_25_files():
    assert len(SHEET) == 25
    assert len({s.file for s in SHEET.values()}) == 25


@pytest.mark.parametrize("station_id", list(SHEET))
def test_parses_with_sheet_row_only(station_id):
    spec = SHEET[station_id]
    expect = EXPECT.loc[station_id]
    res = clean(spec, DATA / spec.file, DEFAULT)
    assert res.status["raw_rows"] == int(expect["expect_rows"])
    assert len(res.clean) == int(expect["expect_clean"])
    assert len(res.clean) + len(res.rejected) == res.status["raw_rows"]
    assert res.clean["discharge_m3s"].max() == pytest.approx(float(expect["expect_q_max_m3s"]), rel=1e-4)
    assert np.isfinite(res.clean[["stage_m", "discharge_m3s", "discharge_sd_m3s"]].to_numpy()).all()
    if spec.datetime_column:
        assert (res.clean["datetime"] != "").all()


def test_green_channel_largest_gauging():
    res = clean(SHEET["green_channel"], DATA / "rc" / "green_channel.csv", DEFAULT)
    # 29 617.364 cfs; the 838.66 m3/s is 29 617 cfs rounded first
    assert res.clean["discharge_m3s"].max() == pytest.approx(838.670, abs=5e-4)


def test_timezone_for_naive_local_times():
    res = clean(SHEET["isere"], DATA / "rc" / "isere.csv", DEFAULT)
    # 2000-10-20 10:00 in Grenoble (CEST, UTC+2) is 08:00 UTC
    assert res.clean["datetime"].iloc[0] == "2000-10-20T08:00:00+00:00"
