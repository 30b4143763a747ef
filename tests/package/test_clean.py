import numpy as np
import pandas as pd
import pytest

from ratingflow.clean import CleaningError, clean
from ratingflow.sheet import SheetError, StationSpec, load_sheet
from ratingflow.units import FOOT, discharge_to_m3s, stage_to_m, uncertainty_to_sd_m3s

DEFAULT = {"kind": "percent_2sd", "value": 7}


def spec(**kw):
    base = dict(station_id="s1", name="test", file="s1.csv", stage_column="stage", stage_unit="m",
                discharge_column="q", discharge_unit="m3/s")
    base.update(kw)
    return StationSpec(**base)


def write(tmp_path, text, name="s1.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_demo_stations_clean_without_loss(sheet, root):
    for sid, sp in sheet.items():
        raw_path = root / "data" / "raw" / sp.file
        res = clean(sp, raw_path, DEFAULT)
        good, bad = res.clean, res.rejected
        assert res.status["status"] == "ok"
        raw_rows = len(pd.read_csv(raw_path, dtype=str, skip_blank_lines=False))
        assert len(good) + len(bad) == raw_rows, sid
        assert len(good) >= 3, sid
        assert (good["discharge_m3s"] > 0).all() and np.isfinite(good[["stage_m", "discharge_sd_m3s"]]).all().all()
        assert set(good["line"]).isdisjoint(bad["line"])


def test_usgs_feet_cfs_and_datetime(sheet, root):
    res = clean(sheet["green_channel"], root / "data/raw/ratingcurve/green_channel.csv", DEFAULT)
    good, bad = res.clean, res.rejected
    assert len(good) == 36 and len(bad) == 0
    # the largest gauging is 29 617.364 cfs = 838.670 m3/s (29 617 cfs rounded would be 838.660)
    assert good["discharge_m3s"].max() == pytest.approx(29617.364 * 0.028316846592, rel=1e-12)
    assert good["discharge_m3s"].max() == pytest.approx(838.67, abs=0.001)
    assert good["stage_m"].max() == pytest.approx(12.32 * FOOT)
    first = good.iloc[0]
    assert first["datetime"] == "2020-05-21T21:13:41+00:00"  # 14:13:41 at UTC-07:00
    assert first["discharge_sd_m3s"] == pytest.approx(199.1729306 * FOOT**3)
    assert (good["uncertainty_source"] == "file").all()


def test_hydra_empty_rows_rejected_and_missing_uncertainty_defaulted(sheet, root):
    res = clean(sheet["hydra_sample"], root / "data/raw/hydra/hydra_sample_data.csv", DEFAULT)
    good, bad = res.clean, res.rejected
    assert len(good) == 16 and len(bad) == 7
    assert set(bad["reason_code"]) == {"empty_row"}
    assert list(bad["line"]) == list(range(18, 25))
    row = good.set_index("line").loc[2]  # 0.064 expanded fraction -> 3.2 % at 1 SD
    assert row["discharge_sd_m3s"] == pytest.approx(0.032 * 0.341)
    defaulted = good[good["uncertainty_source"] == "default"]
    assert len(defaulted) == 6
    np.testing.assert_allclose(defaulted["discharge_sd_m3s"] / defaulted["discharge_m3s"], 0.035)
    # local Pacific time (sheet time zone) written in UTC
    assert good.set_index("line").loc[2, "datetime"] == "2024-01-26T19:16:54+00:00"
    # the gauging with debris at the outlet (0.002 m3/s at 0.285 m) is flagged, and kept
    assert res.status["suspect_lines"] == [12]


def test_bad_values_are_rejected_with_reasons(tmp_path):
    text = (
        "stage,q,sd\n"
        "1.0,10,1\n"       # 2 ok
        "abc,10,1\n"       # 3 unparseable stage
        "1.1,0,1\n"        # 4 zero discharge
        "1.2,-3,1\n"       # 5 negative discharge
        "1.3,nan,1\n"      # 6 non-finite
        "1.4,inf,1\n"      # 7 non-finite
        "1.0,10,1\n"       # 8 duplicate of line 2
        ",12,1\n"          # 9 missing stage
        "1.5,20,-1\n"      # 10 negative uncertainty
        "1.6,22,\n"        # 11 ok, default uncertainty
        "1.7,25,1\n"       # 12 ok
    )
    res = clean(spec(uncertainty_column="sd", uncertainty_kind="absolute_sd"), write(tmp_path, text), DEFAULT)
    good, bad = res.clean, res.rejected
    assert list(good["line"]) == [2, 11, 12]
    codes = dict(zip(bad["line"], bad["reason_code"]))
    assert codes == {3: "unparseable_number", 4: "discharge_not_positive", 5: "discharge_not_positive",
                     6: "non_finite", 7: "non_finite", 8: "exact_duplicate", 9: "missing_value",
                     10: "invalid_uncertainty"}
    reasons = dict(zip(bad["line"], bad["reason"]))
    assert reasons[3] == "unparseable number (stage in column 'stage')"
    assert bad.set_index("line").loc[3, "stage"] == "abc"  # original text kept
    assert list(good["uncertainty_source"]) == ["file", "default", "file"]


def test_missing_column_names_station_file_and_column(tmp_path):
    path = write(tmp_path, "stage,flow\n1,2\n")
    with pytest.raises(CleaningError, match=r"station s1, file .*s1.csv: row 1: no column 'q' \(sheet column discharge_column\)"):
        clean(spec(), path, DEFAULT)


def test_bom_and_non_utf8(tmp_path):
    res = clean(spec(), write(tmp_path, "\ufeffstage,q\n1,2\n2,5\n3,9\n"), DEFAULT)
    assert len(res.clean) == 3
    with pytest.raises(CleaningError, match="row 3, column 'stage': bytes that are not utf-8"):
        clean(spec(), write(tmp_path, "stage,q\n1,2\nnaïve,5\n", encoding="latin-1"), DEFAULT)


def test_units_round_trip_and_uncertainty_kinds():
    assert stage_to_m([100], "cm")[0] == pytest.approx(1.0)
    assert discharge_to_m3s([1000], "l/s")[0] == pytest.approx(1.0)
    assert discharge_to_m3s([1], "cfs")[0] == pytest.approx(0.0283168466)
    q = np.array([10.0])
    assert uncertainty_to_sd_m3s([10], "percent_2sd", q, "m3/s")[0] == pytest.approx(0.5)
    assert uncertainty_to_sd_m3s([5], "percent_sd", q, "m3/s")[0] == pytest.approx(0.5)
    assert uncertainty_to_sd_m3s([0.1], "fraction_2sd", q, "m3/s")[0] == pytest.approx(0.5)
    assert uncertainty_to_sd_m3s([1], "absolute_sd", q, "cfs")[0] == pytest.approx(FOOT**3)
    with pytest.raises(ValueError, match="unknown stage unit 'mm'"):
        stage_to_m([1], "mm")


def test_sheet_errors_name_row_and_column(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    header = "station_id\tname\tfile\tstage_column\tstage_unit\tdischarge_column\tdischarge_unit\n"
    cases = {
        "a/b\tx\tf.csv\tstage\tm\tq\tm3/s\n": "row 2 .*'station_id'",
        "a\tx\t../f.csv\tstage\tm\tq\tm3/s\n": "row 2 .*'file'.*outside",
        "a\tx\tf.csv\tstage\tyd\tq\tm3/s\n": "row 2 .*'stage_unit'.*unknown unit 'yd'",
        "a\tx\tf.csv\tstage\tm\tq\tm3/s\na\tx\tg.csv\tstage\tm\tq\tm3/s\n": "row 3 .*appears twice",
    }
    for body, message in cases.items():
        path = tmp_path / "sheet.tsv"
        path.write_text(header + body)
        with pytest.raises(SheetError, match=message):
            load_sheet(path, raw)


def _gap_one_by_one(depth, y, gaps):
    """The robust screen's gap search as it was written first: one scalar Huber fit per gap."""
    from ratingflow.robust import _huber_fit

    best = None
    for gap in gaps:
        coef, _, scale = _huber_fit(np.log(depth + gap), y)
        if 0.3 <= coef[1] <= 6.0 and (best is None or scale < best[1]):
            best = (gap, scale)
    return None if best is None else best[0]


def test_the_vectorised_gap_search_chooses_the_gap_of_the_scalar_fits():
    """All gaps fitted at once must pick the very gap the scalar fits pick (the clean table's robust_z, and with it
    every fit key, depends on it), also on ties (noise-free curves clip the scale), a single stage and bad exponents."""
    from ratingflow.robust import GAPS, _choose_gap

    rng = np.random.default_rng(7)
    kinds = {"noisy": 0, "noise-free": 0, "single stage": 0, "none plausible": 0}
    for i in range(60):
        n = int(rng.integers(6, 60))
        h = np.sort(rng.uniform(0.1, 3.0, n))
        noise = [0.0, 1e-4, 0.05, 0.3][i % 4]
        b = -1.0 if i % 15 == 7 else rng.uniform(0.6, 3.5)  # -1: discharge falling with stage
        if i % 15 == 3:
            h[:] = h[0]
        y = rng.normal(0, 1) + b * np.log(h - rng.uniform(-0.3, 0.09)) + noise * rng.standard_normal(n)
        y[int(rng.integers(n))] += 2.0 * (i % 3 == 0)
        depth = h - h.min()
        gaps = np.geomspace(1e-3 * max(np.ptp(h), 1e-3), 3.0 * max(np.ptp(h), 1e-3), GAPS)
        expected = _gap_one_by_one(depth, y, gaps)
        assert _choose_gap(depth, y, gaps) == expected, i
        kind = ("single stage" if i % 15 == 3 else "none plausible" if expected is None
                else "noise-free" if noise == 0 else "noisy")
        kinds[kind] += 1
    assert min(kinds.values()) > 0, kinds  # each kind of case was met
