"""Discharge series (issue 15): stage records read with nothing lost, integration weights, the bands and their
coverage, aggregates per draw, out-of-range flags and limits, a station without rating, and incremental reuse."""
import json
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from numpyro.diagnostics import hpdi
from scipy.stats import binom

from ratingflow.discharge import FLAGS, aggregates, run, unit_hint
from ratingflow.hydrograph import discharge_series, windows
from ratingflow.intervals import SORT_BLOCK, hpdi_of_sorted, median_and_hpdi, median_and_hpdi_of_log, sorted_draws
from ratingflow.io import save_idata
from ratingflow.sheet import StationSpec
from ratingflow.stage_record import load_record
from ratingflow.status import empty_idata
from test_summarise import fake_idata

DATA = Path(__file__).resolve().parents[1] / "data" / "stage"
SPEC = StationSpec("st", "test", "g.csv", "stage", "m", "q", "m3/s", stage_file="bad_stage.csv",
                   stage_time_column="time", stage_level_column="stage", stage_nonsys_sd_column="sd", delimiter=";")


def test_bad_stage_rows_are_rejected_with_line_and_reason_and_nothing_is_lost():
    record, rejected, status = load_record(SPEC, DATA / "bad_stage.csv", now=pd.Timestamp("2026-01-01"))
    assert status["raw_rows"] == len(record) + len(rejected) == 12
    reasons = dict(zip(rejected["line"], rejected["reason_code"]))
    assert reasons == {6: "duplicate_time", 7: "unparseable_number", 9: "unparseable_datetime", 10: "empty_row",
                       11: "invalid_uncertainty"}
    assert "same time as line 4" in rejected.set_index("line").loc[6, "reason"]
    assert "column 'stage'" in rejected.set_index("line").loc[7, "reason"]
    # the record was out of order (line 5 before line 4): sorted, and the status says so
    assert status["sorted"] and status["out_of_order_rows"] == 1 and "sorted by time" in status["notes"][0]
    assert list(record["line"]) == [2, 3, 5, 4, 8, 12, 13]
    assert record["time"].is_monotonic_increasing
    # a missing stage stays a (missing) step; a missing stage error is no error there, and said
    assert np.isnan(record.set_index("line").loc[8, "stage_m"]) and status["missing_stage_rows"] == 1
    assert record.set_index("line").loc[12, "nonsys_sd_m"] == 0 and "no stated stage error" in status["notes"][1]


def test_stage_in_local_time_and_units():
    spec = replace(SPEC, stage_level_unit="cm", stage_timezone="Europe/Paris", stage_datum_offset_m=1.0)
    record, _, _ = load_record(spec, DATA / "bad_stage.csv", now=pd.Timestamp("2026-01-01"))
    first = record.iloc[0]
    assert first["time"] == pd.Timestamp("2020-12-31 23:00") and first["stage_m"] == pytest.approx(1.012)
    assert first["nonsys_sd_m"] == pytest.approx(0.0001)


def test_hpdi_of_sorted_rows_and_median_and_hpdi_are_numpyros():
    x = np.random.default_rng(1).gamma(2.0, size=(300, 1000)).astype(np.float32)
    rows = np.sort(x, axis=1)
    for n in (1000, 999):  # the median of an even and of an odd number of draws
        median, bands = median_and_hpdi(x.T[:n], (0.9, 0.95))
        np.testing.assert_array_equal(median, np.median(x.T[:n], axis=0))
        for prob in (0.9, 0.95):
            ref = hpdi(x.T[:n], prob, axis=0)
            np.testing.assert_array_equal(bands[prob][0], ref[0])
            np.testing.assert_array_equal(bands[prob][1], ref[1])
            if n == 1000:
                lo, hi = hpdi_of_sorted(rows, prob, axis=1)
                np.testing.assert_array_equal(lo, ref[0])
                np.testing.assert_array_equal(hi, ref[1])


def test_sorted_draws_are_numpys_sort_laid_out_stage_by_stage():
    """sorted_draws is np.sort(axis=0) value for value (-inf, NaN and ties included) for a padded view as the
    predictions give, a Fortran-ordered array and draws that do not fill the last block; each stage's draws lie
    side by side. Other dimensions fall back to np.sort."""
    rng = np.random.default_rng(4)
    n = 2 * SORT_BLOCK + 37
    padded = rng.normal(size=(n, 70)).astype(np.float32)
    padded[rng.random(padded.shape) < 0.1] = -np.inf
    padded[::50, 3] = np.nan
    padded[:, 5] = 1.0
    before = padded.copy()
    for draws in (padded[:, :61], np.asfortranarray(padded), padded[:SORT_BLOCK - 1], padded[:, :1]):
        got = sorted_draws(draws)
        np.testing.assert_array_equal(got, np.sort(draws, axis=0))
        assert got.T.flags.c_contiguous
    np.testing.assert_array_equal(padded, before)  # the input is left as it was
    for other in (padded[:, 0], rng.normal(size=(n, 3, 2))):
        np.testing.assert_array_equal(sorted_draws(other), np.sort(other, axis=0))


def test_the_rating_tables_sort_of_logs_gives_the_values_of_a_sort_of_discharges():
    """median_and_hpdi_of_log (float32 logs sorted, exp of the order statistics used) equals median_and_hpdi of the
    discharges value for value, with -inf (no flow, at or below h0) in some draws and one stage all -inf."""
    rng = np.random.default_rng(3)
    logs = (rng.normal(2.0, 0.3, size=(1001, 40)) + np.linspace(-3, 3, 40)).astype(np.float32)
    logs[rng.random(logs.shape) < np.linspace(0.6, 0.0, 40)] = -np.inf
    logs[:, 0] = -np.inf
    for n in (1001, 1000):
        median, bands = median_and_hpdi(np.exp(logs[:n].astype(np.float64)), (0.9, 0.95, 0.5))
        median_log, bands_log = median_and_hpdi_of_log(logs[:n], (0.9, 0.95, 0.5))
        np.testing.assert_array_equal(median_log, median)
        for prob in (0.9, 0.95, 0.5):
            np.testing.assert_array_equal(bands_log[prob][0], bands[prob][0])
            np.testing.assert_array_equal(bands_log[prob][1], bands[prob][1])
    assert median[0] == 0.0 and (bands[0.9][1][:5] >= 0).all()


def _integrate(win, q):
    volumes = np.zeros((1, len(win.days)))
    for slot in range(3):
        np.add.at(volumes[0], win.day[slot], win.weight[slot] * q)
    return volumes[0]


def test_windows_integrate_the_linear_interpolation_exactly_and_leave_gaps_out():
    t = np.array(["2021-01-01T00:00", "2021-01-01T18:00", "2021-01-02T06:00", "2021-01-02T12:00",
                  "2021-01-03T20:00", "2021-01-03T22:00"], dtype="datetime64[ns]")
    sec = (t - t[0]).astype(np.int64) / 1e9
    q = 1.0 + sec / 86400  # linear in time: the trapezoid pieces are exact
    win = windows(t, np.ones(6, bool), 18 * 3600)
    vol = _integrate(win, q)
    # day 1: 0..24 h (the 18 h-06 h interval is cut at midnight); day 2: 0..12 h; day 3: 20..22 h (12:00 -> 20:00
    # of the day before is 32 h: a gap)
    expect = [86400 * (1 + 0.5), 43200 * (2 + 0.25), 7200 * (1 + (2 + 21 / 24))]
    np.testing.assert_allclose(vol, expect, rtol=1e-12)
    np.testing.assert_allclose(win.covered, [86400, 43200, 7200])
    invalid = np.ones(6, bool)
    invalid[1] = False  # a missing value breaks both intervals next to it
    assert windows(t, invalid, 18 * 3600).covered[0] == 0


CTX_KEYS = ("stage_ref", "span", "gap_mean", "gap_sd", "break_lo", "break_hi", "n_segments", "gplm")


def _curve_inputs(a=5.0, b=1.7, h0=100.2, sigma=0.05, draws=1000):
    idata = fake_idata(np.random.default_rng(0), a, b, h0, sigma, draws=draws // 4)
    from ratingflow.discharge import thinned
    from ratingflow.posterior import model_of

    _, structure, context = model_of(idata)
    return idata, thinned(idata.posterior, draws), context, structure, float(idata.constant_data["stage_offset"])


def test_degenerate_posterior_without_errors_gives_the_formula():
    idata, draws, context, structure, offset = _curve_inputs(sigma=1e-6)
    h = np.linspace(100.6, 102.9, 500)
    t = np.datetime64("2021-01-01") + np.arange(500) * np.timedelta64(15, "m")
    win = windows(t, np.ones(500, bool), 3600)
    s = discharge_series(jax.random.PRNGKey(0), draws, h - offset, np.zeros(500), np.full(500, -1), np.zeros(500),
                         np.ones(500, bool), win, context, structure)
    truth = 5.0 * (h - 100.2) ** 1.7
    np.testing.assert_allclose(s.median, truth, rtol=1e-4)
    np.testing.assert_allclose(s.bounds[0.9][0], truth, rtol=1e-4)


def test_bands_with_stage_and_structural_error_cover_the_truth_at_the_nominal_rate():
    """One known curve (all draws alike), a structural error and a stage error; each of 12 288 independent steps
    has its truth inside the 90 % band with probability 0.9 (the band's own Monte Carlo error, 1000 draws, is
    small). The test fails with probability < 1e-3 (binomial bounds below)."""
    n, sigma, sd_h = 3 * 4096, 0.05, 0.02
    idata, draws, context, structure, offset = _curve_inputs(sigma=sigma)
    draws["sigma"][:] = sigma
    rng = np.random.default_rng(7)
    h_true = rng.uniform(100.6, 102.9, n)
    q_true = 5.0 * (h_true - 100.2) ** 1.7 * np.exp(sigma * rng.standard_normal(n))
    h_obs = h_true + sd_h * rng.standard_normal(n)
    t = np.datetime64("2021-01-01") + np.arange(n) * np.timedelta64(15, "m")
    win = windows(t, np.ones(n, bool), 3600)
    s = discharge_series(jax.random.PRNGKey(3), draws, h_obs - offset, np.full(n, sd_h), np.full(n, -1), np.zeros(n),
                         np.ones(n, bool), win, context, structure)
    for prob in (0.9, 0.95):
        inside = int(((s.bounds[prob][0] <= q_true) & (q_true <= s.bounds[prob][1])).sum())
        lo, hi = binom.ppf(2.5e-4, n, prob - 0.01), binom.isf(2.5e-4, n, prob + 0.01)  # +-1 % for Monte Carlo error
        assert lo <= inside <= hi, (prob, inside / n)
    # without the stage error in the bands, they are too narrow: coverage falls clearly below nominal
    s0 = discharge_series(jax.random.PRNGKey(3), draws, h_obs - offset, np.zeros(n), np.full(n, -1), np.zeros(n),
                          np.ones(n, bool), win, context, structure)
    inside0 = int(((s0.bounds[0.9][0] <= q_true) & (q_true <= s0.bounds[0.9][1])).sum())
    assert inside0 < binom.ppf(1e-3, n, 0.85)


def test_systematic_stage_error_is_shared_within_a_block():
    idata, draws, context, structure, offset = _curve_inputs(sigma=1e-6)
    n = 2000
    h = np.full(n, 101.5)
    t = np.datetime64("2021-01-01") + np.arange(n) * np.timedelta64(1, "h")
    block = np.repeat([0, 1], n // 2)
    win = windows(t, np.ones(n, bool), 3600)
    s = discharge_series(jax.random.PRNGKey(0), draws, h - offset, np.zeros(n), block, np.full(n, 0.05),
                         np.ones(n, bool), win, context, structure)
    # one error per draw and block: every step of a block has the same band (up to the residual error of 1e-6);
    # the two blocks differ
    lower = s.bounds[0.9][0]
    assert np.ptp(lower[: n // 2]) < 1e-4 * lower[0] and np.ptp(lower[n // 2:]) < 1e-4 * lower[0]
    assert abs(lower[0] - lower[-1]) > 1e-3 * lower[0]
    # and it does not average out: the daily volumes of a draw move together with its stage error
    daily = s.daily_volume[:, :40].mean(axis=1)
    assert daily.std() / daily.mean() > 0.5 * 1.7 * 0.05 / (101.5 - 100.2)


def test_aggregates_are_per_draw_not_from_the_bounds():
    rng = np.random.default_rng(2)
    days = np.datetime64("2021-01-01") + np.arange(365)
    volumes = 86400 * rng.lognormal(0, 0.3, (1000, 365))
    agg = aggregates(volumes, np.full(365, 86400.0), days, (0.9,), 0.95)
    annual = agg["annual"].iloc[0]
    daily = agg["daily"]
    # independent days: the annual band is far narrower than the sum of the daily bounds
    width = annual["volume_hpdi90_upper_m3"] - annual["volume_hpdi90_lower_m3"]
    assert width < 0.2 * (daily["volume_hpdi90_upper_m3"] - daily["volume_hpdi90_lower_m3"]).sum()
    np.testing.assert_allclose(annual["volume_median_m3"], np.median(volumes.sum(axis=1)))
    assert len(agg["monthly"]) == 12 and agg["monthly"]["coverage"].eq(1).all()
    # a month covered less than min_coverage has no mean and no volume
    covered = np.full(365, 86400.0)
    covered[:3] = 0
    thin = aggregates(volumes, covered, days, (0.9,), 0.95)
    assert np.isnan(thin["monthly"]["mean_discharge_median_m3s"].iloc[0])
    assert np.isfinite(thin["monthly"]["mean_discharge_median_m3s"].iloc[1])


def _project(tmp_path, stage_lines, spec_changes=None):
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "stage.csv").write_text("time;stage\n" + "".join(stage_lines))
    spec = replace(SPEC, stage_file="stage.csv", stage_nonsys_sd_column="", **(spec_changes or {}))
    return raw, spec


def _hourly(h, start="2021-03-01"):
    t = pd.date_range(start, periods=len(h), freq="h")
    return [f"{a:%Y-%m-%d %H:%M};{b:.3f}\n" for a, b in zip(t, h)]


def test_a_record_in_cm_declared_as_m_is_flagged_with_a_hint(tmp_path):
    idata = fake_idata(np.random.default_rng(0), 5.0, 1.7, 100.2, 0.05, draws=100)
    fit = tmp_path / "fit.nc"
    save_idata(idata, fit)
    h_cm = 100 * np.linspace(100.6, 102.9, 200)  # the record is in cm, the sheet says m
    raw, spec = _project(tmp_path, _hourly(h_cm))
    out = tmp_path / "out"
    out.mkdir()
    summary = run(spec, raw, fit, None, out, {"draws": 100}, 1)
    assert summary["status"] == "flagged" and summary["flag_counts"]["beyond_limit"] == 200
    assert "cm read as m" in summary["message"]
    table = pd.read_csv(out / "st.csv")
    assert table["discharge_median_m3s"].isna().all() and table["flags"].str.contains("beyond_limit").all()
    gaps = pd.read_csv(out / "st.gaps.csv")
    assert len(gaps) == 1 and "beyond the limit" in gaps["cause"].iloc[0]
    assert unit_hint(np.array([50.0, 51.0]), 100.5, 103.0).endswith("(datum?)")
    assert unit_hint(np.array([101.0]), 100.5, 103.0) == ""


def test_series_flags_out_of_range_and_reuses_unchanged_stations(tmp_path):
    idata = fake_idata(np.random.default_rng(0), 5.0, 1.7, 100.2, 0.05, draws=100)
    fit = tmp_path / "fit.nc"
    save_idata(idata, fit)
    h = np.r_[np.linspace(100.3, 103.0, 48), [103.5, 106.0], [np.nan] * 3, np.linspace(103.0, 101.0, 47)]
    lines = [line.replace("nan", "NA") for line in _hourly(h)]
    raw, spec = _project(tmp_path, lines)
    first = tmp_path / "first"
    first.mkdir()
    summary = run(spec, raw, fit, None, first, {"draws": 100}, 1)
    table = pd.read_csv(first / "st.csv", keep_default_na=False)
    limit = summary["periods"][0]["limit_m"]
    assert 103.5 < limit < 106.0  # h0 + 1.5 x (103 - h0), h0 about 100.2
    flags = dict(zip(table["stage_m"].astype(str), table["flags"]))
    assert flags["100.3"] == "below_gauged" and flags["103.5"] == "above_gauged"
    assert flags["106"] == "above_gauged;beyond_limit"
    assert summary["flag_counts"]["missing_stage"] == 3 and summary["gaps"] == 1
    assert pd.read_csv(first / "st.gaps.csv")["hours"].iloc[0] == 5  # 103.5 at 48 h .. 103.0 at 53 h
    daily = pd.read_csv(first / "st.daily.csv")
    assert list(daily["coverage"].iloc[:2]) == [1, 1] and daily["coverage"].iloc[2] == pytest.approx(19 / 24)  # the gap
    assert np.isnan(daily["mean_discharge_median_m3s"].iloc[2]) and np.isfinite(daily["volume_median_m3"].iloc[1])
    # unchanged inputs: the published files are linked, not recomputed
    second = tmp_path / "second"
    second.mkdir()
    assert run(spec, raw, fit, None, second, {"draws": 100}, 1, previous=first) == {}
    assert json.loads((second / "st.status.json").read_text())["reused"]
    assert (second / "st.nc").samefile(first / "st.nc")
    # appended stage: recomputed
    (raw / "stage.csv").write_text((raw / "stage.csv").read_text() + "".join(_hourly([101.0], "2021-03-05 04:00")))
    third = tmp_path / "third"
    third.mkdir()
    assert run(spec, raw, fit, None, third, {"draws": 100}, 1, previous=first)["steps"] == 101


def test_a_stage_record_without_rating_gets_a_status_not_a_crash(tmp_path):
    fit = tmp_path / "fit.nc"
    save_idata(empty_idata("st", "insufficient data: 2 valid gauging(s)"), fit)
    raw, spec = _project(tmp_path, _hourly([1.0, 1.1]))
    run(spec, raw, fit, None, tmp_path, {}, 1)
    status = json.loads((tmp_path / "st.status.json").read_text())
    assert status["status"] == "no rating" and "not fitted" in status["message"] and status["raw_rows"] == 2
    run(replace(spec, stage_file=""), raw, fit, None, tmp_path, {}, 1)
    assert json.loads((tmp_path / "st.status.json").read_text())["status"] == "no stage record"
    run(replace(spec, stage_file="missing.csv"), raw, fit, None, tmp_path, {}, 1)
    status = json.loads((tmp_path / "st.status.json").read_text())
    assert status["status"] == "error" and "stage record not found" in status["message"]


def test_flag_bits_are_distinct():
    assert len(set(FLAGS.values())) == len(FLAGS) and all(v & (v - 1) == 0 for v in FLAGS.values())
