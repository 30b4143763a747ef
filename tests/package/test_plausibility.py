"""Issue 18, cases 2 and 3: unit errors are named with their evidence, gaugings dated in the future or before
the earliest plausible date are rejected, and the unit checks raise no false alarm on the 25 real gauging
files or on synthetic stations."""
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ratingflow.clean import clean
from ratingflow.sheet import load_sheet
from ratingflow.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "gaugings"
DEFAULT = {"kind": "percent_2sd", "value": 7}
DEMO = load_sheet(ROOT / "config" / "stations.tsv", ROOT / "data" / "raw")


def test_cfs_declared_as_m3s_is_named():
    """co_channel's file is in ft and cfs; declared m³/s, its discharges are 35x too large."""
    spec = replace(DEMO["co_channel"], discharge_unit="m3/s")
    res = clean(spec, ROOT / "data" / "raw" / spec.file, DEFAULT)
    (warning,) = res.status["warnings"]
    assert warning.startswith("discharge looks like cfs") and "1014 m³/s, not 3.581e+04" in warning


def test_stage_in_cm_declared_as_m_is_named(tmp_path):
    """isere in cm, declared m: a gauged range of about 400 m."""
    spec = DEMO["isere"]
    raw = pd.read_csv(ROOT / "data" / "raw" / spec.file, sep=spec.delimiter, dtype=str, keep_default_na=False)
    raw[spec.stage_column] = (pd.to_numeric(raw[spec.stage_column]) * 100).round(1).astype(str)
    raw.to_csv(tmp_path / "isere_cm.csv", sep=spec.delimiter, index=False)
    res = clean(replace(spec, file="isere_cm.csv"), tmp_path / "isere_cm.csv", DEFAULT)
    (warning,) = res.status["warnings"]
    assert warning.startswith("stage looks like cm: the gauged stages span") and "read as cm they span" in warning


def test_no_false_alarm_on_real_files_and_synthetic_stations(tmp_path):
    """suspect_z=0 turns the (slow, here irrelevant) robust suspect fit off."""
    sheet = load_sheet(DATA / "sheet.tsv", DATA)
    assert len(sheet) == 25
    for sid, spec in sheet.items():
        assert clean(spec, DATA / spec.file, DEFAULT, suspect_z=0).status["warnings"] == [], sid
    for sid, spec in DEMO.items():
        assert clean(spec, ROOT / "data" / "raw" / spec.file, DEFAULT, suspect_z=0).status["warnings"] == [], sid
    generate(100, tmp_path, seed=3)
    synthetic = load_sheet(tmp_path / "config" / "stations.tsv", tmp_path / "data" / "raw")
    assert {spec.stage_unit for spec in synthetic.values()} == {"m", "ft"}
    for sid, spec in synthetic.items():
        assert clean(spec, tmp_path / "data" / "raw" / spec.file, DEFAULT, suspect_z=0).status["warnings"] == [], sid


@pytest.mark.parametrize("when, code", [("2099-06-01 10:00", "date_in_future"), ("1702-06-01", "date_before_earliest")])
def test_implausible_dates_are_rejected(tmp_path, when, code):
    spec = DEMO["co_channel"]
    raw = (ROOT / "data" / "raw" / spec.file).read_text().splitlines()
    raw.append(f"{when},9.0,8000,150")
    (tmp_path / "co.csv").write_text("\n".join(raw) + "\n")
    res = clean(replace(spec, file="co.csv"), tmp_path / "co.csv", DEFAULT, now=pd.Timestamp("2026-12-01", tz="UTC"))
    assert len(res.clean) == 15 and len(res.rejected) == 1
    row = res.rejected.iloc[0]
    assert row["line"] == 17 and row["reason_code"] == code and "column 'datetime'" in row["reason"]
    # earliest date from the config
    res = clean(replace(spec, file="co.csv"), tmp_path / "co.csv", DEFAULT, earliest="2016-01-01",
                now=pd.Timestamp("2026-12-01", tz="UTC"))
    assert set(res.rejected["reason_code"]) == {code, "date_before_earliest"}
