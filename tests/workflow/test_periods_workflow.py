"""Rating periods end to end (issue 14): Goudet with the service's shift dates, first with its gaugings up to
April 2022, then with the gaugings that arrived after the 2022-04-23 shift. The re-run opens a new period, says
so in results/changes.csv, and keeps the past periods' tables as they were issued."""
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import yaml

from conftest import JAX_CACHE, ROOT
from project import make_project

RAW = "bayders/Goudet_gauging_2018_2022.csv"
SHIFT = "2022-04-23"


def snakemake(path):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(path),
           "--cores", "2"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = make_project(tmp_path_factory.mktemp("periods"), ["goudet"], JAX_CACHE)
    config = yaml.safe_load((path / "config" / "config.yaml").read_text())
    config["models"]["candidates"] = ["seg1"]  # a shorter test; PSIS-LOO still prefers periods by about 80 elpd
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    raw = path / "data" / "raw" / RAW
    lines = raw.read_text().splitlines(keepends=True)
    # the file is newest first: drop the gaugings after the shift of 2022-04-23
    later = [line for line in lines[1:] if pd.Timestamp(pd.to_datetime(line.split(";")[3], dayfirst=True)) > pd.Timestamp(SHIFT)]
    raw.write_text("".join([lines[0]] + [line for line in lines[1:] if line not in later]))
    first = snakemake(path)
    assert first.returncode == 0, first.stderr[-5000:]
    before = {name: pd.read_csv(path / "results" / name, keep_default_na=False)
              for name in ("tables/goudet.csv", "periods/goudet.shifts.csv", "periods.csv", "changes.csv")}
    xml = ET.parse(path / "results" / "export" / "ratings.wml2.xml")
    raw.write_text("".join(lines))
    second = snakemake(path)
    assert second.returncode == 0, second.stderr[-5000:]
    return path, before, xml, len(later)


def test_known_shifts_give_periods_and_a_shift_after_the_last_gauging_is_reported(runs):
    path, before, xml, _ = runs
    shifts = before["periods/goudet.shifts.csv"]
    late = shifts[shifts["date"].str.startswith(SHIFT)]
    assert list(late["status"]) == ["ignored"] and "after the last gauging" in late["detail"].iloc[0]
    assert (shifts["status"] == "merged").sum() == 1  # the October 2019 flood period of 2 gaugings
    n = int((shifts["status"] == "applied").sum()) + 1
    periods = before["periods.csv"]
    assert periods["station_id"].eq("goudet").all() and len(periods) == n
    # PSIS-LOO prefers periods by about 80 elpd with an SE of the difference near 12 (z about 6.5): the
    # chance that another machine's draws choose the timeless curve is far below 1e-3
    assert periods["rating"].eq("own rating").all()
    table = before["tables/goudet.csv"]
    assert sorted(table["period"].unique()) == list(range(1, n + 1))
    assert table.groupby("period")["valid_to"].first().iloc[-1] == ""  # the current period is open-ended


def test_the_waterml_export_holds_every_period(runs):
    _, before, xml, _ = runs
    n = len(before["periods.csv"])
    ns = {"wmlrgs": "http://www.opengis.net/waterml/part2/1.0", "gml": "http://www.opengis.net/gml/3.2"}
    assert len(xml.findall(".//wmlrgs:ConversionTable", ns)) == n
    assert len(xml.findall(".//wmlrgs:ConversionPeriod", ns)) == n
    assert len(xml.findall(".//wmlrgs:periodEnd", ns)) == n - 1
    assert len(xml.findall(".//wmlrgs:Gauging", ns)) == int(before["periods.csv"]["n_gaugings"].astype(int).sum())


def test_a_rerun_opens_the_new_period_and_keeps_the_issued_ones(runs):
    path, before, _, n_later = runs
    changes = pd.read_csv(path / "results" / "changes.csv", keep_default_na=False).set_index("station_id")
    change = changes.loc["goudet", "change"]
    n = len(before["periods.csv"])
    assert change.startswith(f"new rating period {n + 1} from {SHIFT}") and "known shift" in change
    assert changes.loc["goudet", "new_gaugings"] == n_later
    table = pd.read_csv(path / "results" / "tables" / "goudet.csv", keep_default_na=False)
    assert sorted(table["period"].unique()) == list(range(1, n + 2))
    old = before["tables/goudet.csv"]
    for p in range(1, n + 1):  # past periods: the rows issued by the first run, the last one now closed
        now, was = table[table["period"] == p], old[old["period"] == p]
        assert now["issued"].ne("").all(), p
        pd.testing.assert_frame_equal(now.drop(columns=["issued", "valid_to"]).reset_index(drop=True),
                                      was.drop(columns=["issued", "valid_to"]).reset_index(drop=True))
    assert table.loc[table["period"] == n, "valid_to"].iloc[0].startswith(SHIFT)
    assert table.loc[table["period"] == n + 1, "issued"].eq("").all()
    stations = pd.read_csv(path / "results" / "stations.csv", keep_default_na=False).set_index("station_id")
    assert stations.loc["goudet", "current_period"] == n + 1
