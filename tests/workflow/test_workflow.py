"""End to end: Snakemake on two small demo stations with short chains; last, the same on a real
SLURM cluster (only in CI, CI=true, or with RATINGFLOW_SLURM_TEST=1: it installs Debian's SLURM packages and starts daemons
as root; it comes last because, once SLURM is installed but stopped, the SLURM plugin's start-up checks
make every later snakemake call wait about 10 s)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import arviz as az
import pandas as pd
import pytest
import xarray as xr
import yaml

from conftest import JAX_CACHE
from project import make_project

STATIONS = ["provo_natural", "krokfors"]
#: a station whose file has too few valid gaugings, and one whose file is missing
BROKEN = {"too_few": "too_few.csv", "no_file": "no_such_file.csv"}


def snakemake(project, *args):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(project.root / "workflow" / "Snakefile"),
           "-d", str(project.dir), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


class Project:
    def __init__(self, root, path):
        self.root, self.dir = root, path


def stage_lines(lo, hi, start, hours):
    """An hourly stage record that swings between ``lo`` and ``hi`` (text lines)."""
    import numpy as np

    t = pd.date_range(start, periods=hours, freq="h")
    h = lo + (hi - lo) * (0.5 + 0.5 * np.sin(np.arange(hours) / 30))
    return [f"{a:%Y-%m-%d %H:%M},{b:.4f}\n" for a, b in zip(t, h)]


def add_stage_records(path):
    """A stage record for each of STATIONS, inside its gauged range, named in the project's sheet."""
    sheet = pd.read_csv(path / "config" / "stations.tsv", sep="\t", dtype=str, keep_default_na=False)
    for i, row in sheet.iterrows():
        if row["station_id"] not in STATIONS:
            continue
        raw = pd.read_csv(path / "data" / "raw" / row["file"], sep=row["delimiter"] or ",")
        stage = pd.to_numeric(raw[row["stage_column"]], errors="coerce").dropna()
        name = f"stage/{row['station_id']}.csv"
        (path / "data" / "raw" / "stage").mkdir(exist_ok=True)
        (path / "data" / "raw" / name).write_text("time,level\n" + "".join(
            stage_lines(stage.min(), stage.max(), "2021-01-01", 24 * 20)))
        sheet.loc[i, ["stage_file", "stage_time_column", "stage_level_column", "stage_timezone"]] = [
            name, "time", "level", "UTC"]
    sheet.to_csv(path / "config" / "stations.tsv", sep="\t", index=False)


@pytest.fixture(scope="module")
def project(root, tmp_path_factory):
    path = make_project(tmp_path_factory.mktemp("project"), STATIONS, JAX_CACHE,
                        [{"station_id": sid, "file": name} for sid, name in BROKEN.items()])
    (path / "data" / "raw" / "too_few.csv").write_text("W,Q\n1.0,2.0\n1.2,-1\n1.4,5.0\n")
    add_stage_records(path)
    run = snakemake(Project(root, path))
    assert run.returncode == 0, run.stderr[-5000:]
    return Project(root, path)


def test_every_output_exists_and_loads(project):
    out = project.dir / "results"
    for sid in STATIONS:
        for rel in (f"clean/{sid}.csv", f"clean/{sid}.rejected.csv", f"prior/{sid}.json",
                    f"plots/{sid}.svg", f"tables/{sid}.csv", f"diagnostics/{sid}.json"):
            assert (out / rel).stat().st_size > 0, rel
        # the prior figure is drawn only where the prior check did not pass
        passed = json.loads((out / "prior" / f"{sid}.json").read_text())["passed"]
        assert (out / "prior" / f"{sid}.svg").exists() != passed
        idata = az.from_netcdf(out / "fit" / f"{sid}.nc")
        for group in ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data", "prior",
                      "prior_predictive"):
            assert group in idata.groups(), group
        # the config's draws; a fit in the BaRatin form (the own-offsets round) has the form's own (sampler.offsets)
        own_form = "offset" in idata.posterior
        draws = yaml.safe_load((project.dir / "config" / "config.yaml").read_text())["sampler"]["offsets"]["num_samples"]
        assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == (draws if own_form else 200)
        assert idata.attrs["station"] == sid and len(idata.attrs["config_hash"]) == 16
        assert "version_numpyro" in idata.attrs
        table = xr.open_dataset(out / "tables" / f"{sid}.nc")
        assert table["discharge_median_m3s"].attrs["units"] == "m3/s"
        assert (table["discharge_median_m3s"].diff("stage_m") >= 0).all()
        prior = az.from_netcdf(out / "prior" / f"{sid}.nc")
        assert prior.prior.sizes["draw"] == 200
    changes = pd.read_csv(out / "changes.csv").set_index("station_id")
    assert list(changes.loc[STATIONS, "change"]) == ["first rating"] * 2
    for sid in STATIONS:  # the issued rating is kept
        (snapshot,) = (out / "history" / sid).iterdir()
        assert (snapshot / "table.csv").read_bytes() == (out / "tables" / f"{sid}.csv").read_bytes()
    stations = pd.read_csv(out / "stations.csv").set_index("station_id")
    assert list(stations.index) == STATIONS + list(BROKEN)
    assert list(stations.loc[STATIONS, "gaugings_used"]) == [22, 27]
    for col in ("b_1_median", "b_1_hpdi90_lower", "h0_median", "rhat_max", "ess_bulk_min", "prior_check_passed", "status",
                "model", "equation", "table_bands", "candidates_elpd"):
        assert stations.loc[STATIONS, col].notna().all(), col
    assert all(e.startswith("Q = ") for e in stations.loc[STATIONS, "equation"])
    for sid in STATIONS:  # the discharge series (issue 15)
        series = xr.open_dataset(out / "discharge" / f"{sid}.nc")
        assert series.sizes["time"] == 480 and series.sizes["day"] == 20 and series.sizes["year"] == 1
        assert (series["discharge_hpdi95_lower_m3s"] <= series["discharge_median_m3s"]).all()
        assert (series["discharge_median_m3s"] <= series["discharge_hpdi95_upper_m3s"]).all()
        width = {p: series[f"discharge_hpdi{p}_upper_m3s"] - series[f"discharge_hpdi{p}_lower_m3s"] for p in (90, 95)}
        assert (width[90] <= width[95]).all()  # the narrowest 90 % interval is never wider than the 95 % one
        assert (out / "discharge" / f"{sid}.png").stat().st_size > 10_000
        assert stations.loc[sid, "discharge_status"] == "ok" and stations.loc[sid, "stage_rows_raw"] == 480
    assert list(stations.loc[list(BROKEN), "discharge_status"]) == ["no stage record"] * 2
    models = pd.read_csv(out / "models.csv")
    assert set(models["station_id"]) == set(STATIONS)
    for sid in STATIONS:
        rows = models[models["station_id"] == sid].set_index("model")
        assert rows["chosen"].sum() == 1 and rows.loc[rows["chosen"]].index[0] == stations.loc[sid, "model"]
        fitted = rows["fitted"].astype(bool) if "fitted" in rows else pd.Series(True, rows.index)
        assert fitted.iloc[0] and rows.loc[fitted, "elpd_loo"].notna().all() and rows.loc[fitted, "se"].gt(0).all()
        assert rows.loc[~fitted, "reason"].str.startswith("screened out").all()  # the screen (issue 16)


def test_bad_stations_do_not_stop_the_others(project):
    out = project.dir / "results"
    stations = pd.read_csv(out / "stations.csv").set_index("station_id")
    assert stations.loc["too_few", "status"] == "insufficient data"
    assert "2 valid gauging(s)" in stations.loc["too_few", "flags"]
    assert stations.loc["too_few", "gaugings_rejected"] == 1
    assert stations.loc["no_file", "status"] == "error"
    assert "no_such_file.csv: file not found" in stations.loc["no_file", "flags"]
    for sid in BROKEN:
        assert az.from_netcdf(out / "fit" / f"{sid}.nc").attrs["skipped"]
        assert (out / "plots" / f"{sid}.svg").stat().st_size > 0


def test_strict_mode_fails_after_writing_everything(project):
    run = snakemake(project, "--config", "strict=True")
    assert run.returncode != 0
    assert "strict mode: 2 of 4 station(s) not fitted or not converged" in (project.dir / "logs" / "strict_gate.log").read_text()
    assert (project.dir / "results" / "stations.csv").exists()


def test_nothing_to_do_after_a_run(project):
    run = snakemake(project, "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


def test_snakemake_report(project):
    run = snakemake(project, "--report", str(project.dir / "report.html"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert (project.dir / "report.html").stat().st_size > 10_000


def planned(run) -> set[tuple[str, str]]:
    """(rule, batch) of every job a dry run plans; batch is '' for whole-run rules."""
    jobs, rule = set(), None
    for line in (run.stdout + run.stderr).splitlines():
        if line.startswith(("rule ", "localrule ")):
            if rule:
                jobs.add((rule, ""))
            rule = line.split()[1].rstrip(":")
        elif rule and line.strip().startswith("wildcards: batch="):
            jobs.add((rule, line.split("batch=")[1].split(",")[0].strip()))
            rule = None
        elif rule and not line.strip():
            jobs.add((rule, ""))
            rule = None
    return jobs


def batches_of(project) -> dict[str, list[str]]:
    from ratingflow.batches import assign
    from ratingflow.sheet import load_sheet

    return assign(load_sheet(project.dir / "config" / "stations.tsv", project.dir / "data" / "raw"),
                  project.dir / "data" / "raw", 1)


BATCH_STAGES = ("clean", "periods", "prior_check", "fit", "summarise", "discharge")
WHOLE_RUN = {("publish", ""), ("changes", ""), ("report", ""), ("overview", ""), ("archive", ""), ("export", ""),
             ("all", "")}


def test_changed_raw_file_reruns_only_that_station(project):
    (krokfors_batch,) = [b for b, members in batches_of(project).items() if members == ["krokfors"]]
    raw = project.dir / "data" / "raw" / "bdrc" / "krokfors.csv"
    before = raw.read_text()
    raw.write_text(before + "9.9,21.0\n")
    try:
        dry = snakemake(project, "-n")
    finally:
        raw.write_text(before)
    assert dry.returncode == 0
    assert planned(dry) == {(stage, krokfors_batch) for stage in BATCH_STAGES} | WHOLE_RUN


def test_appended_stage_recomputes_that_stations_discharge_only(project):
    """Issue 15, item 7: new stage appended to one station's record reruns its discharge job (and the cheap
    whole-run jobs), not its fit nor any other station's series."""
    (krokfors_batch,) = [b for b, members in batches_of(project).items() if members == ["krokfors"]]
    out = project.dir / "results"
    record = project.dir / "data" / "raw" / "stage" / "krokfors.csv"
    fit_before = (out / "fit" / "krokfors.nc").stat().st_mtime_ns
    other_before = (out / "discharge" / "provo_natural.nc").stat().st_mtime_ns
    lo, hi = (float(x) for x in pd.read_csv(record)["level"].agg(["min", "max"]))
    record.write_text(record.read_text() + "".join(stage_lines(lo, hi, "2021-01-21", 24)))
    dry = snakemake(project, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned(dry) == {("discharge", krokfors_batch)} | WHOLE_RUN
    run = snakemake(project)
    assert run.returncode == 0, run.stderr[-3000:]
    assert xr.open_dataset(out / "discharge" / "krokfors.nc").sizes["time"] == 504
    assert (out / "fit" / "krokfors.nc").stat().st_mtime_ns == fit_before
    assert (out / "discharge" / "provo_natural.nc").stat().st_mtime_ns == other_before


def test_stages_are_rules_that_the_command_line_can_name(project, tmp_path):
    """--until, --forcerun, --set-threads and --set-resources take a stage's name (one rule per stage)."""
    batches = set(batches_of(project))
    fresh = Project(project.root, make_project(tmp_path / "fresh", STATIONS, JAX_CACHE))
    until = snakemake(fresh, "-n", "--until", "fit")
    assert until.returncode == 0, until.stderr[-3000:]
    fresh_batches = set(batches_of(fresh))
    assert planned(until) == {(s, b) for s in ("clean", "periods", "prior_check", "fit") for b in fresh_batches}

    forced = snakemake(project, "-n", "--forcerun", "fit")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert planned(forced) == {(s, b) for s in ("fit", "summarise", "discharge") for b in batches} | WHOLE_RUN

    def fit_jobs(*args):
        run = snakemake(project, "-n", "--cores", "4", "--forcerun", "fit", *args)
        assert run.returncode == 0, run.stderr[-3000:]
        blocks = (run.stdout + run.stderr).split("\n\n")
        return [b for b in blocks if b.lstrip().startswith(("rule fit:", "[")) and "rule fit:" in b]

    default = fit_jobs()
    # the profile's one thread (Snakemake prints no threads line for one)
    assert len(default) == len(batches) and all("mem_mb=4000" in b for b in default)
    assert all("threads: 1" in b or "threads:" not in b for b in default)
    changed = fit_jobs("--set-threads", "fit=3", "--set-resources", "fit:mem_mb=3000")
    assert len(changed) == len(batches) and all("threads: 3" in b and "mem_mb=3000" in b for b in changed)


SCRIPT = Path(__file__).parents[1] / "slurm" / "run_test.sh"


@pytest.mark.skipif(os.environ.get("RATINGFLOW_SLURM_TEST") != "1" and os.environ.get("CI") != "true",
                    reason="starts a SLURM cluster as root; runs in CI (CI=true) or with RATINGFLOW_SLURM_TEST=1")
def test_zz_every_job_runs_as_a_slurm_job():
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1500)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert " 0 without a SLURM_JOB_ID" in out, out[-2000:]


def headless(chromium, *args, timeout=120):
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=timeout)


def test_overview_page_renders_in_chromium(project, chromium):
    """Issue 18, case 6: results/report.html, opened in headless Chromium, shows the overview table with a row
    per station, and the first station's figure loads. Its screenshot is docs/overview.png."""
    page = project.dir / "results" / "report.html"
    run = headless(chromium, "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert '<table id="stations">' in dom
    assert dom.count('<tr data-plot="plots/') == len(STATIONS) + len(BROKEN)
    for sid in STATIONS:
        assert f'<a href="plots/{sid}.svg">figure</a>' in dom
    (img,) = [line for line in dom.split("<img")[1:2]]
    assert 'data-loaded="1"' in img and f'src="plots/{STATIONS[0]}.svg"' in img, img[:300]
    assert "insufficient data" in dom and "flagged" in dom or "ok" in dom
    shot = project.dir / "overview.png"
    run = headless(chromium, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr[-2000:]


def test_each_job_logs_a_timestamped_line_per_station(project):
    """Issue 18, case 7: a job can be watched while it runs; every batch stage writes one flushed,
    timestamped line per station to its log (tests/workflow/test_scheduled_run.py reads one mid-fit)."""
    import re

    for stage in ("clean", "prior_check", "fit", "summarise", "discharge"):
        text = "\n".join(p.read_text() for p in (project.dir / "logs" / stage).glob("*.log"))
        for sid in STATIONS:
            assert re.search(rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ station {sid}: ", text, re.M), (stage, sid)
