"""Issue 18, case 1: one wrong gauging (co_channel plus a gauging at stage -1.50 ft, 1500 cfs) moved the whole
fit (h0 -4.17 m, b 3.77, sigma 0.37) while its own residual stayed small, and the station stayed `ok`. Now the
gauging's Pareto k names it, the residual SD is flagged against the gaugings' stated uncertainty, and the
station ends `flagged`; the gauging is kept (the decision is the hydrographer's)."""
import subprocess
import sys

import pandas as pd
import yaml

from conftest import JAX_CACHE, ROOT
from project import make_project


def test_a_gauging_that_drives_the_fit_is_named(tmp_path):
    project = make_project(tmp_path / "project", ["co_channel"], JAX_CACHE)
    raw = project / "data" / "raw" / "ratingcurve" / "co_channel.csv"
    lines = raw.read_text().splitlines()
    assert len(lines) == 16  # header and 15 gaugings; an empty line 17, then the wrong gauging on line 18
    raw.write_text("\n".join(lines + ["", "2021-06-01 10:00:00 [UTC-07:00],-1.50,1500,30"]) + "\n")
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["models"]["candidates"] = ["seg1"]
    config["sampler"].update(num_chains=4, num_warmup=300, num_samples=300)
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d",
                          str(project), "--cores", "2"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    row = pd.read_csv(project / "results" / "stations.csv", keep_default_na=False).iloc[0]
    assert row["status"] == "flagged"
    assert "gauging at raw line 18 drives the fit: PSIS-LOO Pareto k" in row["flags"], row["flags"]
    assert row["high_leverage_lines"].startswith("18 (k ")
    assert "residual SD of ln Q" in row["flags"]
    assert row["gaugings_used"] == 16  # kept
    rejected = pd.read_csv(project / "results" / "clean" / "co_channel.rejected.csv")
    assert rejected[["line", "reason_code"]].to_dict("records") == [{"line": 17, "reason_code": "empty_row"}]
