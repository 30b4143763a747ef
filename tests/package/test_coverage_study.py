"""The coverage study's parts without NUTS: limits, intervals, folds, the peer runner, the report."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scipy.stats import binom

from ratingflow.coverage_study.peer import run_peer
from ratingflow.coverage_study.report import write_report
from ratingflow.coverage_study.study import (folds, log_predictive_density, paired_lpd, real_stations, side_by_side,
                                             stage_third, wilson)
from ratingflow.data import StationData
from stats import ALPHA, station_coverage_limits

ROOT = Path(__file__).resolve().parents[2]
GAUGINGS = ROOT / "tests" / "data" / "gaugings"
SEED = 20261125


def test_clustered_limits_hold_their_false_failure_probability():
    """In the extreme case the limits are built for (a station's points all covered or all missed) the exact
    probability of falling outside them is at most ALPHA; with independent points it is smaller still."""
    for p, stations in ((0.9, 40), (0.95, 40), (0.9, 2)):
        lo, hi = station_coverage_limits(p, stations)
        k = np.arange(stations + 1)
        outside = (k / stations < lo) | (k / stations > hi)
        assert binom.pmf(k[outside], stations, p).sum() <= ALPHA
        k = np.arange(5 * stations + 1)  # five independent points per station
        outside = (k / (5 * stations) < lo) | (k / (5 * stations) > hi)
        assert binom.pmf(k[outside], 5 * stations, p).sum() <= ALPHA


def test_wilson_interval():
    lo, hi = wilson(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-3) and hi == pytest.approx(0.9448, abs=1e-3)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 5)[0] >= 0.0 and wilson(5, 5)[1] <= 1.0  # not -0.000 in a report from rounding


def test_log_predictive_density_of_one_draw_is_the_normal_density():
    log_curve = np.array([[0.0, 1.0]])
    sd = np.array([[0.5, 2.0]])
    y = np.array([0.3, -1.0])
    expected = -0.5 * ((y - log_curve[0]) / sd[0]) ** 2 - np.log(sd[0]) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(log_predictive_density(log_curve, sd, y), expected)


def test_predictive_cdf_is_the_limit_of_new_gauging_draws():
    """The held-out check's CDF (the posterior mean of each draw's Normal CDF) is the share of new-gauging draws
    (curve + sd x a normal) below the gauging, as their number grows: 200 draws x 2 000 normals each agree within
    0.005 at every point (binomial SD about 0.0008: six SD, a false-failure probability far below 1e-3; NumPy's
    draws are the same on every machine). Inside the 90 % interval exactly where it lies within 0.05-0.95."""
    from ratingflow.coverage_study.study import predictive_cdf

    rng = np.random.default_rng(11)
    log_curve = rng.normal(0.0, 0.1, (200, 6))
    sd = rng.uniform(0.03, 0.08, (200, 6))
    y = np.array([-0.3, -0.12, 0.0, 0.05, 0.14, 0.4])
    cdf = predictive_cdf(log_curve, sd, y)
    draws = log_curve[:, None, :] + sd[:, None, :] * rng.normal(size=(200, 2000, 6))
    np.testing.assert_allclose(cdf, (draws < y).mean(axis=(0, 1)), atol=0.005)
    lo, hi = np.quantile(draws.reshape(-1, 6), [0.05, 0.95], axis=0)
    inside = (lo <= y) & (y <= hi)
    away = np.abs(cdf - 0.05) > 0.01
    away &= np.abs(cdf - 0.95) > 0.01  # points within 0.01 of an edge may fall either way with finite draws
    np.testing.assert_array_equal(((cdf >= 0.05) & (cdf <= 0.95))[away], inside[away])
    assert cdf[0] < 0.05 < cdf[2] < 0.95 < cdf[-1]


def test_folds_are_balanced_reproducible_and_thirds_cover_the_range():
    st = StationData("x", np.linspace(1, 4, 23), np.ones(23), np.full(23, 0.05))
    f = folds(st, 5, 1)
    assert sorted(np.bincount(f)) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(f, folds(st, 5, 1))
    assert not np.array_equal(f, folds(st, 5, 2))
    third = stage_third(st)
    assert third[0] == 0 and third[-1] == 2 and set(third) == {0, 1, 2}


def test_real_stations_skip_synthetic_and_repeated_sets():
    stations, skipped = real_stations(GAUGINGS / "sheet.tsv", GAUGINGS, {"kind": "percent_2sd", "value": 7})
    ids = {st.station_id for st in stations}
    assert "simulated_rating" not in ids and len(stations) + len(skipped) == 25
    assert all("same gaugings as" in why or why == "synthetic" for _, why in skipped)


FAKE_PEER = """
import json, sys
jobs = json.load(open(sys.argv[1]))
with open(sys.argv[1] + ".calls", "a") as calls:
    calls.write(str(len(jobs)) + "\\n")
for job in jobs:
    if job["station"] == "bad":
        print(json.dumps({"station": "bad", "fold": job["fold"], "segments": job["segments"], "error": "SamplingError: x"}))
        continue
    print(json.dumps({"station": job["station"], "fold": job["fold"], "segments": job["segments"], "test": job["test"],
                      "inside90": [True] * len(job["test"]), "lpd": [0.5] * len(job["test"])}))
"""


def test_peer_run_resumes_and_reports_failures(tmp_path):
    """Folds already in ratingcurve_folds.jsonl are not run again; a changed segment count is; failures are
    kept apart. A stand-in script takes ratingcurve's place."""
    import sys

    script = tmp_path / "peer.py"
    script.write_text(FAKE_PEER)
    stations = [StationData(sid, np.linspace(1, 3, 10), np.arange(1.0, 11.0), np.full(10, 0.1)) for sid in ("a", "bad")]
    design = [{"station": sid, "fold": f, "segments": 1, "train": list(range(5, 10)) if f == 0 else list(range(5)),
               "test": list(range(5)) if f == 0 else list(range(5, 10))} for sid in ("a", "bad") for f in (0, 1)]
    first = run_peer(sys.executable, stations, design, tmp_path, log=lambda *_: None, script=script)
    assert len(first) == 10 and first.attrs["failures"][0]["station"] == "bad" and len(first.attrs["failures"]) == 2
    again = run_peer(sys.executable, stations, design, tmp_path, log=lambda *_: None, script=script)
    assert again.equals(first)
    design[0]["segments"] = 2  # our choice changed on that fold: only it runs again
    third = run_peer(sys.executable, stations, design, tmp_path, log=lambda *_: None, script=script)
    calls = (tmp_path / "ratingcurve_jobs.json.calls").read_text().split()
    assert calls == ["4", "1"] and sorted(third["segments"].unique()) == [1, 2] and len(third) == 10


def _heldout_rows() -> pd.DataFrame:
    return pd.DataFrame({"station": ["a"] * 4, "fold": [0, 0, 1, 1], "gauging": [0, 1, 2, 3], "third": [0, 1, 2, 2],
                         "segments": [1, 1, 2, 2], "inside90": [True, True, False, True], "lpd": [1.0, 2.0, 0.0, 1.0]})


def test_paired_lpd_and_side_by_side_use_the_gaugings_both_predicted():
    ours = _heldout_rows()
    peer = ours.iloc[:3].assign(lpd=[0.5, 1.0, 0.5], inside90=[True, False, True])  # the peer failed gauging 3
    paired = paired_lpd(ours, peer)
    assert paired["gaugings"] == 3 and paired["mean"] == pytest.approx((0.5 + 1.0 - 0.5) / 3)
    assert paired["se"] == pytest.approx(np.std([0.5, 1.0, -0.5], ddof=1) / np.sqrt(3))
    table = side_by_side(ours, peer).set_index("station")
    assert table.loc["a", "segments"] == "1/2" and table.loc["a", "coverage90"] == 0.75
    assert table.loc["a", "coverage90_ratingcurve"] == pytest.approx(2 / 3)


def test_report_is_written_without_the_simulation(tmp_path):
    """--stations 0: no simulation rows; the report has the held-out part and the peer and says what did not run."""
    ours = _heldout_rows()
    peer = ours.iloc[:3].assign(lpd=[0.5, 1.0, 0.5])
    peer.attrs["failures"] = [{"station": "a", "fold": 1, "segments": 2, "error": "SamplingError: x"}]
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "simulation_coverage.csv").write_text("stale\n")
    text = write_report(tmp_path, None, ours, peer, [], {"seed": SEED}, {"held-out (ratingflow)": 1.0},
                        reasons={"simulation": "--stations 0"})
    assert "Parts not run: simulation (--stations 0)." in text and "## 1. Simulation\n\nNot run: --stations 0." in text
    assert "Held-out, low third" in text and "Simulation, true curve" not in text
    assert "Folds ratingcurve could not fit: 1" in text
    assert "validation_findings" not in text  # no --findings: no link
    assert (tmp_path / "validation" / "coverage.png").exists()
    assert (tmp_path / "validation" / "heldout_coverage.csv").exists()
    assert not (tmp_path / "validation" / "simulation_coverage.csv").exists()
    assert (tmp_path / "validation.md").read_text() == text

    nothing = write_report(tmp_path / "none", pd.DataFrame(), None, None, [], {}, {}, findings=tmp_path / "f.md")
    assert "Parts not run: simulation (not run); held-out (not run); peer (not run)." in nothing
    assert "- none: no part of the study ran" in nothing and "[f.md](../f.md)" in nothing


def test_the_own_offsets_table_shows_the_rounds_baratin_fits_when_no_one_h0_fit_is_left():
    """With ``models.own_offsets: -.inf`` every chosen one-h0 seg2 fit goes to the BaRatin form: where all of them
    pass the gate, no station has a check's z, and the table still shows the form's fits; with neither, no table."""
    from ratingflow.coverage_study.report import _own_offsets_section

    rows = pd.DataFrame({"station": ["s1"] * 2 + ["s2"] * 2, "controls": [2, 2, 1, 1], "model": ["seg2"] * 2 + ["seg1"] * 2,
                         "own_offsets_form": [True, True, False, False], "own_offsets_z": np.nan,
                         "curve90": [True, False, True, True], "curve50": [False, False, True, False]})
    text = "\n".join(_own_offsets_section(rows))
    assert "| 2 | seg2 | BaRatin form (the round's, passed the gate) | 1 | 2 | 0.500 |" in text
    assert "\n| 1 | seg1" not in text  # seg1 is neither checked nor in the form
    assert _own_offsets_section(rows.assign(own_offsets_form=False)) == []


def test_the_station_interval_resamples_stations_and_the_verdicts_read_each_target():
    """``station_interval`` agrees with a bootstrap of the stations and is wider than Wilson's over points where a
    station's points are covered together; the report gives a verdict for the 90 % band overall and in each class
    and for the 50 % band overall, each with that interval."""
    from ratingflow.coverage_study.report import _verdicts
    from ratingflow.coverage_study.study import simulation_summary, station_interval

    rng = np.random.default_rng(3)
    stations = 300
    together = rng.random(stations) < 0.5  # each station's five points all covered or all missed, for the 50 % band
    rows = pd.DataFrame({
        "station": np.repeat([f"s{i}" for i in range(stations)], 5),
        "controls": np.repeat(np.where(np.arange(stations) % 3 == 0, 2, 1), 5),
        "curve50": np.repeat(together, 5), "curve90": rng.random(5 * stations) < 0.9,
        "curve95": rng.random(5 * stations) < 0.95, "fresh90": rng.random(5 * stations) < 0.9})
    lo, hi = station_interval(rows, "curve50")
    k = int(rows["curve50"].sum())
    w_lo, w_hi = wilson(k, len(rows))
    assert hi - lo > 2 * (w_hi - w_lo)  # whole stations covered together: about sqrt(5) times as wide
    per_station = together.astype(float)
    boot = [per_station[rng.integers(0, stations, stations)].mean() for _ in range(4000)]
    assert lo == pytest.approx(np.percentile(boot, 2.5), abs=0.01)
    assert hi == pytest.approx(np.percentile(boot, 97.5), abs=0.01)
    assert np.isnan(station_interval(rows[rows["station"] == "s0"], "curve50")[0])  # one station: no interval

    lines = _verdicts(simulation_summary(rows), None, None, None)
    assert [line.split(":")[0] for line in lines] == [
        "- Simulation, all stations, true curve in the 90 % HPDI", "- Simulation, one control, true curve in the 90 % HPDI",
        "- Simulation, two controls, true curve in the 90 % HPDI", "- Simulation, all stations, true curve in the 50 % HPDI"]
    assert f"(95 % interval over stations {lo:.1%}-{hi:.1%}) (target 47-53 %)" in lines[3]


def test_pooled_runs_keep_their_stations_apart(tmp_path, capsys):
    """Two runs' points, whose station names repeat, pool into one table: points add up, and the interval over
    stations counts 2 x 200 stations (narrower than one run's, by about sqrt(2) here). ``--seed`` reaches the study."""
    from ratingflow.coverage_study.cli import parser
    from ratingflow.coverage_study.pool import main, pooled_points
    from ratingflow.coverage_study.study import station_interval

    rng = np.random.default_rng(5)
    folders = []
    for run in range(2):
        together = rng.random(200) < 0.5
        rows = pd.DataFrame({"station": np.repeat([f"sim{i:04d}" for i in range(200)], 5),
                             "controls": np.repeat(np.where(np.arange(200) % 4 == 0, 2, 1), 5),
                             "curve50": np.repeat(together, 5), "curve90": rng.random(1000) < 0.9,
                             "curve95": rng.random(1000) < 0.95, "fresh90": rng.random(1000) < 0.9})
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        rows.to_csv(folder / "simulation_points.csv", index=False)
        folders.append(folder)
    pooled = pooled_points(folders)
    assert len(pooled) == 2000 and pooled["station"].nunique() == 400
    one = station_interval(pd.read_csv(folders[0] / "simulation_points.csv"), "curve50")
    both = station_interval(pooled, "curve50")
    assert 1.2 < (one[1] - one[0]) / (both[1] - both[0]) < 1.7
    assert main([str(f) for f in folders]) == 0
    out = capsys.readouterr().out
    assert out.startswith("400 stations from 2 run(s)")
    row = next(line for line in out.splitlines() if line.startswith("| all stations") and "50 %" in line)
    assert [cell.strip() for cell in row.split("|")][4:6] == [str(int(pooled["curve50"].sum())), "2000"]
    assert parser().parse_args(["--config", "c", "--out", "o", "--seed", "7"]).seed == 7
