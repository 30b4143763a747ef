"""The discharge coverage study, small (issue 15): 16 one-control synthetic stations (the model is the true one),
short chains, a year of hourly recorded stage with known stage errors each. The full study is
``python -m ratingflow.discharge_study --stations 200`` (docs/discharge_study.md)."""
import numpy as np
import pytest
import yaml

from ratingflow.discharge_study import STEPS, report, run
from stats import station_coverage_limits

from conftest import ROOT


@pytest.mark.slow
def test_discharge_bands_cover_the_truth_per_station():
    """Steps of one station share its curve and systematic errors, so the station is the unit: the mean over 16
    stations of each one's share of steps inside its 90 % band lies within station_coverage_limits (false failure
    <= 1e-3 when the bands are right). The annual volumes: at most 16 of 16 inside, and at least the 1e-3 binomial
    lower bound of 90 %."""
    from scipy.stats import binom

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["models"]["candidates"] = ["seg1"]
    config["sampler"].update(num_chains=2, num_warmup=400, num_samples=500)
    config["discharge"]["draws"] = 1000
    table, timing = run(16, 3, config, two_control_share=0.0)
    assert len(table) == 16 and (table["controls"] == 1).all()
    lo, hi = station_coverage_limits(0.9, 16)
    assert lo <= table["steps90"].mean() <= hi, table["steps90"].describe()
    assert (table["steps95"] >= table["steps90"]).all()
    assert table["volume90"].sum() >= binom.ppf(1e-3, 16, 0.9)
    text = report(table, timing, "--stations 16", config)
    assert "| all | 16 |" in text and f"{STEPS} hourly steps" in text
    assert np.isfinite(table["volume_median_m3"]).all()
