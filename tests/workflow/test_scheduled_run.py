"""Scheduled runs recover from a hard kill (issue 18, case 4): a run killed with SIGKILL mid-fit leaves
Snakemake's lock behind; the next bin/scheduled-run finds it stale, unlocks, reruns and exits 0."""
import os
import signal
import subprocess
import time

import pandas as pd

from conftest import JAX_CACHE, ROOT
from project import make_project

SCHEDULED = ROOT / "bin" / "scheduled-run"


def start(project, **kw):
    env = {**os.environ, "RATINGFLOW_DIR": str(project), "CORES": "2"}
    return subprocess.Popen(["bash", str(SCHEDULED)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, **kw)


def processes_in(folder) -> list[int]:
    """Pids of the processes whose working folder is ``folder``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == str(folder):
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_a_run_killed_mid_fit_is_recovered_by_the_next_one(tmp_path):
    project = make_project(tmp_path / "project", ["co_channel"], JAX_CACHE)
    run = start(project)
    fit_log = project / "logs" / "fit"
    deadline = time.time() + 600
    # wait until the fit job is sampling (it logs a flushed progress line when it starts)
    while time.time() < deadline and run.poll() is None:
        logs = list(fit_log.glob("*.log")) if fit_log.exists() else []
        if any("sampling" in p.read_text() for p in logs):
            break
        time.sleep(0.5)
    assert run.poll() is None, "the run ended before its fit job started:\n" + run.stdout.read()[-3000:]
    # a crash: the run and every process working in the folder die at once (Snakemake starts its jobs in
    # their own sessions, so killing the run's process group alone leaves the fit job running)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    for pid in processes_in(project):
        os.kill(pid, signal.SIGKILL)
    assert list((project / ".snakemake" / "locks").iterdir()), "a killed run leaves Snakemake's lock"
    assert not (project / "results" / "stations.csv").exists()

    again = start(project)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out[-4000:]
    assert "found a stale Snakemake lock" in out and "rerunning its incomplete jobs" in out
    stations = pd.read_csv(project / "results" / "stations.csv")
    assert list(stations["station_id"]) == ["co_channel"] and stations["model"].notna().all()
    locks = project / ".snakemake" / "locks"  # Snakemake may remove the folder itself when it unlocks
    assert not locks.exists() or not list(locks.iterdir())


def test_a_live_snakemake_in_the_folder_is_not_unlocked(tmp_path):
    """A Snakemake started by hand in the folder (not a scheduled run) keeps its lock: exit 75, nothing touched."""
    project = make_project(tmp_path / "project", ["co_channel"], JAX_CACHE)
    (project / ".snakemake" / "locks").mkdir(parents=True)
    (project / ".snakemake" / "locks" / "0.input.lock").write_text("")
    # a stand-in for a live Snakemake process working in the folder
    live = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 60"], cwd=project)
    try:
        time.sleep(0.5)
        run = subprocess.run(["bash", str(SCHEDULED)], env={**os.environ, "RATINGFLOW_DIR": str(project)},
                             capture_output=True, text=True, timeout=120)
    finally:
        live.kill()
    assert run.returncode == 75, run.stdout + run.stderr
    assert "locked by a live process" in run.stderr
    assert (project / ".snakemake" / "locks" / "0.input.lock").exists()
