"""The validation study, small: 40 simulated stations and 2 real ones, coverage within a binomial
tolerance. The full study is ``python -m ratingflow.validation`` (README, "Validation")."""
from pathlib import Path

import numpy as np
import pytest

from ratingflow.data import StationData
from ratingflow.fit import SamplerSettings
from ratingflow.model import ModelSettings, Priors
from ratingflow.validation import (Fitter, crossval, folds, heldout_summary, log_predictive_density, paired_lpd,
                                   real_stations, run_peer, side_by_side, simulate, simulation_summary, stage_third,
                                   wilson, write_report)

ROOT = Path(__file__).resolve().parents[1]
GAUGINGS = ROOT / "tests" / "data" / "gaugings"
SEED = 20261125


def within_binomial(k: int, n: int, p: float, z: float = 3.0) -> bool:
    return abs(k / n - p) <= z * np.sqrt(p * (1 - p) / n)


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


def test_paired_lpd_and_side_by_side_use_the_gaugings_both_predicted():
    import pandas as pd

    ours = pd.DataFrame({"station": ["a"] * 4, "fold": [0, 0, 1, 1], "gauging": [0, 1, 2, 3], "segments": [1, 1, 2, 2],
                         "inside90": [True, True, False, True], "lpd": [1.0, 2.0, 0.0, 1.0]})
    peer = ours.iloc[:3].assign(lpd=[0.5, 1.0, 0.5], inside90=[True, False, True])  # the peer failed gauging 3
    paired = paired_lpd(ours, peer)
    assert paired["gaugings"] == 3 and paired["mean"] == pytest.approx((0.5 + 1.0 - 0.5) / 3)
    assert paired["se"] == pytest.approx(np.std([0.5, 1.0, -0.5], ddof=1) / np.sqrt(3))
    table = side_by_side(ours, peer).set_index("station")
    assert table.loc["a", "segments"] == "1/2" and table.loc["a", "coverage90"] == 0.75
    assert table.loc["a", "coverage90_ratingcurve"] == pytest.approx(2 / 3)


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


def _coverage(sim, check):
    summary = simulation_summary(sim)
    print(summary.to_string())
    row = summary[(summary["stations"] == "all stations")].set_index("check")
    return int(row.loc[check, "covered"]), int(row.loc[check, "points"])


def test_simulated_new_gaugings_covered_within_binomial_tolerance(small_study):
    k, n = _coverage(small_study[0], "new gauging, 90 % predictive")
    assert n == 200 and within_binomial(k, n, 0.9), (k, n)


@pytest.mark.xfail(strict=True, reason="known miss (issue 8, docs/validation.md): the curve HPDI covers the true "
                                       "curve less often than nominal (77 % of 200 points at 90 % here)")
@pytest.mark.parametrize("check, nominal", [("true curve, 90 % HPDI", 0.9), ("true curve, 95 % HPDI", 0.95)])
def test_simulated_true_curve_covered_within_binomial_tolerance(small_study, check, nominal):
    k, n = _coverage(small_study[0], check)
    assert n == 200 and within_binomial(k, n, nominal), (check, k, n)


def test_heldout_coverage_within_binomial_tolerance(small_study):
    _, heldout, design, _ = small_study
    assert len(heldout) == 36 + 27 and len(design) == 10
    summary = heldout_summary(heldout, "ratingflow").set_index("stage third")
    print(summary.to_string())
    k, n = int(heldout["inside90"].sum()), len(heldout)
    assert within_binomial(k, n, 0.9), (k, n)
    assert np.isfinite(summary.loc["all", "mean lpd"])


def test_report_is_written(small_study, tmp_path):
    sim, heldout, _, skipped = small_study
    text = write_report(tmp_path, sim, heldout, None, skipped, {"seed": SEED}, {"simulation": 1.0})
    assert "## Verdicts" in text and "true curve, 90 % HPDI" in text
    assert (tmp_path / "validation" / "coverage.png").stat().st_size > 10_000
    assert (tmp_path / "validation" / "heldout_coverage.csv").exists()
