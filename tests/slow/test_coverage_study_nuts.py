"""The coverage study, small: 40 simulated stations and 2 real ones. Simulated coverage must lie within a
binomial tolerance that counts stations, not points (see station_coverage_limits); every statistical
assertion fails falsely with probability at most 1e-3. The full study is ``python -m ratingflow.coverage_study``
(README, "Validation")."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ratingflow.coverage_study.cli import main
from ratingflow.coverage_study.report import write_report
from ratingflow.coverage_study.study import Fitter, crossval, heldout_summary, real_stations, simulate, simulation_summary
from ratingflow.candidates import ModelSettings, Priors
from ratingflow.sampler import SamplerSettings
from stats import station_coverage_limits, station_mean_coverage, within_clustered_tolerance

ROOT = Path(__file__).resolve().parents[2]
GAUGINGS = ROOT / "tests" / "data" / "gaugings"
SEED = 20261125


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
