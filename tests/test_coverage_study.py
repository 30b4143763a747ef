"""The coverage study, small: 40 simulated stations and 2 real ones. Simulated coverage must lie within a
binomial tolerance that counts stations, not points (see station_coverage_limits); every statistical
assertion fails falsely with probability at most 1e-3. The full study is ``python -m ratingflow.coverage_study``
(README, "Validation")."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm

from ratingflow.coverage_study.cli import main
from ratingflow.coverage_study.peer import run_peer
from ratingflow.coverage_study.report import write_report
from ratingflow.coverage_study.study import (Fitter, crossval, folds, heldout_summary, log_predictive_density,
                                             paired_lpd, real_stations, side_by_side, simulate, simulation_summary,
                                             stage_third, wilson)
from ratingflow.data import StationData
from ratingflow.model import ModelSettings, Priors
from ratingflow.sampler import SamplerSettings

ROOT = Path(__file__).resolve().parents[1]
GAUGINGS = ROOT / "tests" / "data" / "gaugings"
SEED = 20261125
#: false-failure probability of each statistical assertion
ALPHA = 1e-3
Z = norm.isf(ALPHA / 2)  # 3.29


def station_coverage_limits(p: float, stations: int) -> tuple[float, float]:
    """Interval the station-mean coverage lies in with probability at least 1 - ALPHA when the bands are right.

    The points of one station share its posterior, so they are not independent; the station is the unit.
    Each station's mean coverage has mean ``p`` and variance at most p(1-p) (its points all covered or all
    missed together); stations are independent, so the mean over them has variance at most
    p(1-p) / stations (a conservative design effect). The interval is the wider of
    - the normal approximation with that variance, p ± z sqrt(p(1-p) / stations), z = 3.29 (two-sided 1e-3);
    - the exact two-sided 1e-3 binomial interval of the extreme case (station coverages 0 or 1, so the
      number of fully covered stations is Binomial(stations, p)), where the normal approximation is poor.
    """
    half = Z * np.sqrt(p * (1 - p) / stations)
    exact_lo = binom.ppf(ALPHA / 2, stations, p) / stations
    exact_hi = binom.isf(ALPHA / 2, stations, p) / stations
    return min(p - half, exact_lo), max(p + half, exact_hi)


def station_mean_coverage(rows: pd.DataFrame, column: str) -> tuple[float, int]:
    per_station = rows.groupby("station")[column].mean()
    return float(per_station.mean()), len(per_station)


def within_clustered_tolerance(rows: pd.DataFrame, column: str, p: float) -> bool:
    coverage, stations = station_mean_coverage(rows, column)
    lo, hi = station_coverage_limits(p, stations)
    return lo <= coverage <= hi


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


def test_log_predictive_density_of_one_draw_is_the_normal_density():
    log_curve = np.array([[0.0, 1.0]])
    sd = np.array([[0.5, 2.0]])
    y = np.array([0.3, -1.0])
    expected = -0.5 * ((y - log_curve[0]) / sd[0]) ** 2 - np.log(sd[0]) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(log_predictive_density(log_curve, sd, y), expected)


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


@pytest.mark.slow
def test_cli_without_simulation_reports_the_heldout_part(tmp_path, capsys):
    """--stations 0 with a one-station sheet: the held-out folds are fitted and reported (it used to crash)."""
    rows = (GAUGINGS / "sheet.tsv").read_text().splitlines()
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("\n".join([rows[0]] + [r for r in rows if r.startswith("co_channel\t")]) + "\n")
    out = tmp_path / "out"
    assert main(["--config", str(ROOT / "config" / "config.yaml"), "--out", str(out), "--stations", "0",
                 "--real-sheet", str(sheet), "--real-dir", str(GAUGINGS), "--folds", "2", "--warmup", "100",
                 "--samples", "100", "--candidates", "seg1", "--jax-cache", ""]) == 0
    text = (out / "validation.md").read_text()
    assert "simulation (--stations 0); peer (no --ratingcurve-python)" in text
    assert "## 2. Held-out real gaugings (1 stations, 2-fold cross-validation)" in text
    assert len(pd.read_csv(out / "validation" / "heldout_ratingflow.csv")) == 15
    assert not (out / "validation" / "simulation_points.csv").exists()


@pytest.fixture(scope="module")
def small_study():
    # the synthetic stations have one or two controls; a third segment is left out to keep CI short
    fitter = Fitter(ModelSettings(candidates=("seg1", "seg2")),
                    SamplerSettings(num_warmup=500, num_samples=500, dense_mass=True, target_accept=0.95), Priors())
    sim = simulate(40, SEED, fitter)
    stations, skipped = real_stations(GAUGINGS / "sheet.tsv", GAUGINGS, {"kind": "percent_2sd", "value": 7})
    real = [st for st in stations if st.station_id in ("green_channel", "bdrc_krokfors")]
    heldout, design = crossval(real, 5, SEED, fitter)
    return sim, heldout, design, skipped


CHECKS = {"new gauging, 90 % predictive": "fresh90", "true curve, 90 % HPDI": "curve90",
          "true curve, 95 % HPDI": "curve95"}


def _coverage_ok(sim: pd.DataFrame, check: str, nominal: float) -> bool:
    print(simulation_summary(sim).to_string())
    assert len(sim) == 200 and sim["station"].nunique() == 40
    coverage, stations = station_mean_coverage(sim, CHECKS[check])
    print(check, coverage, stations, station_coverage_limits(nominal, stations))
    return within_clustered_tolerance(sim, CHECKS[check], nominal)


@pytest.mark.slow
def test_simulated_new_gaugings_covered_within_clustered_tolerance(small_study):
    """False-failure probability at most 1e-3 (see station_coverage_limits)."""
    assert _coverage_ok(small_study[0], "new gauging, 90 % predictive", 0.9)


@pytest.mark.slow
@pytest.mark.parametrize("check, nominal", [("true curve, 90 % HPDI", 0.9), ("true curve, 95 % HPDI", 0.95)])
def test_simulated_true_curve_covered_within_clustered_tolerance(small_study, check, nominal):
    """False-failure probability at most 1e-3 (see station_coverage_limits)."""
    assert _coverage_ok(small_study[0], check, nominal)


@pytest.mark.slow
def test_heldout_rows_predict_every_gauging_once(small_study):
    """The held-out rows, not their coverage: with 2 stations no coverage can be rejected at 1e-3 once the
    station is the unit (station_coverage_limits(0.9, 2) is [0, 1]: both stations missing every held-out
    gauging has probability 0.01 when a station's points go together). Held-out coverage is judged by the
    full study (22 stations); the old "3 binomial SE over 63 points" check here counted correlated points as
    independent."""
    _, heldout, design, _ = small_study
    assert len(heldout) == 36 + 27 and len(design) == 10
    for station, rows in heldout.groupby("station"):
        assert sorted(rows["gauging"]) == list(range(len(rows))), station
    assert station_coverage_limits(0.9, heldout["station"].nunique())[0] == 0.0
    summary = heldout_summary(heldout, "ratingflow").set_index("stage third")
    print(summary.to_string(), station_mean_coverage(heldout, "inside90"))
    assert summary.loc["all", "held-out gaugings"] == 63 and np.isfinite(summary.loc["all", "mean lpd"])


@pytest.mark.slow
def test_report_is_written(small_study, tmp_path):
    sim, heldout, _, skipped = small_study
    text = write_report(tmp_path, sim, heldout, None, skipped, {"seed": SEED}, {"simulation": 1.0})
    assert "## Verdicts" in text and "true curve, 90 % HPDI" in text and "Parts not run: peer (not run)." in text
    assert (tmp_path / "validation" / "coverage.png").stat().st_size > 10_000
    assert (tmp_path / "validation" / "heldout_coverage.csv").exists()
