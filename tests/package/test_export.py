"""WaterML 2.0 Part 2 export: written, read back, and compared (issue 14)."""
import numpy as np
import pandas as pd
import pytest

from ratingflow.export import check_round_trip, read_waterml, run
from ratingflow.sheet import StationSpec


def _station(tmp_path, sid, periods):
    rows = []
    for p in range(1, periods + 1):
        stage = np.round(np.arange(0.5, 1.0, 0.1), 3)
        rows.append(pd.DataFrame({"period": p, "valid_from": "" if p == 1 else f"2020-0{p}-01T00:00:00",
                                  "valid_to": "" if p == periods else f"2020-0{p + 1}-01T00:00:00", "stage_m": stage,
                                  "discharge_median_m3s": p * stage**2, "extrapolated": False}))
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(tmp_path / f"{sid}.csv", index=False)
    pd.DataFrame({"line": [2, 3], "datetime": ["2019-05-01T00:00:00", "2020-05-01T00:00:00"], "stage_m": [0.6, 0.7],
                  "discharge_m3s": [0.4, 0.5]}).to_csv(tmp_path / f"{sid}.clean.csv", index=False)
    return StationSpec(sid, f"station {sid}", "x.csv", "h", "m", "q", "m3/s"), tmp_path / f"{sid}.csv", tmp_path / f"{sid}.clean.csv"


def test_ratings_and_periods_survive_the_round_trip(tmp_path):
    # sheet order z before a: the check must not depend on the order of stations
    specs, tables, cleans = zip(_station(tmp_path, "zeta", 3), _station(tmp_path, "alpha", 1))
    counts = run(list(specs), list(tables), list(cleans), tmp_path / "r.xml", tmp_path / "r.csv")
    assert counts["stations"] == 2 and counts["periods"] == 4
    out = pd.read_csv(tmp_path / "r.csv", dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    check_round_trip(tmp_path / "r.xml", out)  # the whole document, as one reader gets it
    back, periods = read_waterml(tmp_path / "r.xml")
    assert len(back) == len(out) == 20
    assert list(periods["end"]) == ["2020-02-01T00:00:00", "2020-03-01T00:00:00", "", ""]
    assert periods["start"].iloc[0] == "2019-05-01T00:00:00"  # an open first period starts at its first gauging
    assert set(pd.read_csv(tmp_path / "r.csv")["station_id"]) == {"zeta", "alpha"}
    broken = out.copy()
    broken.loc[3, "discharge_median_m3s"] *= 1.01
    with pytest.raises(AssertionError, match="differs"):
        check_round_trip(tmp_path / "r.xml", broken)


def test_an_unchanged_station_is_taken_from_the_cache_and_the_document_is_the_same(tmp_path):
    """Issue 16, incremental runs: the export is one whole-run job, so with hundreds of stations building every
    station's XML and reading it back on each run cost seconds per hundred stations. With a cache only the changed
    station is built; the documents are byte for byte those of a run without the cache."""
    specs, tables, cleans = zip(_station(tmp_path, "zeta", 3), _station(tmp_path, "alpha", 1),
                                _station(tmp_path, "mid", 2))
    args = list(specs), list(tables), list(cleans)
    plain = run(*args, tmp_path / "plain.xml", tmp_path / "plain.csv")
    first = run(*args, tmp_path / "a.xml", tmp_path / "a.csv", cache=tmp_path / "cache")
    again = run(*args, tmp_path / "b.xml", tmp_path / "b.csv", cache=tmp_path / "cache")
    assert (plain["built"], first["built"], again["built"], again["reused"]) == (3, 3, 0, 3)
    for name in ("a", "b"):
        for ext in ("xml", "csv"):
            assert (tmp_path / f"{name}.{ext}").read_bytes() == (tmp_path / f"plain.{ext}").read_bytes()
    table = pd.read_csv(tables[1])
    table["discharge_median_m3s"] *= 2.0
    table.to_csv(tables[1], index=False)
    changed = run(*args, tmp_path / "c.xml", tmp_path / "c.csv", cache=tmp_path / "cache")
    assert (changed["built"], changed["reused"]) == (1, 2)
    back, _ = read_waterml(tmp_path / "c.xml")
    alpha = back[back["station_id"] == "alpha"]
    assert np.allclose(alpha["discharge_median_m3s"], 2.0 * alpha["stage_m"] ** 2)
    out = pd.read_csv(tmp_path / "c.csv", dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    check_round_trip(tmp_path / "c.xml", out)


def test_parts_built_by_several_processes_make_the_same_documents(tmp_path):
    """The export job runs last, with the cores free, and builds the stations' parts in ``workers`` processes: the
    documents are byte for byte those of one process, in the sheet's order, and the counts the same."""
    stations = [_station(tmp_path, f"s{i:02d}", 1 + i % 3) for i in range(7)]
    specs, tables, cleans = (list(x) for x in zip(*stations))
    one = run(specs, tables, cleans, tmp_path / "one.xml", tmp_path / "one.csv")
    three = run(specs, tables, cleans, tmp_path / "three.xml", tmp_path / "three.csv", cache=tmp_path / "cache",
                workers=3)
    assert one == {**three, "reused": 0} and three["built"] == 7
    for ext in ("xml", "csv"):
        assert (tmp_path / f"three.{ext}").read_bytes() == (tmp_path / f"one.{ext}").read_bytes()
    again = run(specs, tables, cleans, tmp_path / "again.xml", tmp_path / "again.csv", cache=tmp_path / "cache",
                workers=3)
    assert (again["built"], again["reused"]) == (0, 7)
    assert (tmp_path / "again.xml").read_bytes() == (tmp_path / "one.xml").read_bytes()
