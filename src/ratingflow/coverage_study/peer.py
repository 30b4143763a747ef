"""Peer: USGS ``ratingcurve==1.1.0`` on the held-out folds, in an interpreter of its own.

The caller provides that interpreter (an environment with ratingcurve installed; the repository's
``bench/ratingcurve_env.py`` makes one) and the script it runs (``bench/ratingcurve_cv.py``). Nothing here
creates environments or installs packages.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd

from ..data import StationData
from .study import stage_third


def run_peer(python: str, stations: list[StationData], design: list[dict], work: Path, log=print, *,
             script: Path) -> pd.DataFrame:
    """ratingcurve on the folds of ``design`` (from :func:`.study.crossval`): ``python script JOBS.json``.

    ``script`` reads the jobs and prints one JSON line per fold (the protocol of ``bench/ratingcurve_cv.py``).

    Each fold's result is appended to ``work/ratingcurve_folds.jsonl`` as it comes, and folds already
    there (same station, fold and segment count) are not run again: a long run can be resumed."""
    work.mkdir(parents=True, exist_ok=True)
    by_id = {st.station_id: st for st in stations}
    done_file = work / "ratingcurve_folds.jsonl"

    def key(r: dict) -> tuple:
        return r["station"], r["fold"], r["segments"]

    def done() -> dict:
        records = [json.loads(line) for line in done_file.read_text().splitlines()] if done_file.exists() else []
        return {key(r): r for r in records}

    records = done()
    jobs = []
    for d in design:
        if key(d) in records:
            continue
        st = by_id[d["station"]]
        jobs.append({**d, "stage": st.stage.tolist(), "q": st.discharge.tolist(), "q_sigma": st.discharge_sd.tolist()})
    if jobs:
        job_file = work / "ratingcurve_jobs.json"
        job_file.write_text(json.dumps(jobs))
        start = time.perf_counter()
        with done_file.open("a") as sink:
            out = subprocess.run([python, str(script), str(job_file)], stdout=sink, stderr=subprocess.PIPE, text=True)
        if out.returncode:
            raise RuntimeError(f"ratingcurve run failed:\n{out.stderr[-3000:]}")
        log(f"ratingcurve: {len(jobs)} folds in {time.perf_counter() - start:.0f} s")
        records = done()
    wanted = [records[key(d)] for d in design if key(d) in records]
    rows, failures = [], []
    for record in wanted:
        if "error" in record:
            failures.append(record)
            continue
        st = by_id[record["station"]]
        thirds = stage_third(st)
        for g, inside, lpd in zip(record["test"], record["inside90"], record["lpd"]):
            rows.append({"station": st.station_id, "fold": record["fold"], "gauging": g, "third": int(thirds[g]),
                         "segments": record["segments"], "inside90": bool(inside), "lpd": float(lpd)})
    frame = pd.DataFrame(rows)
    frame.attrs["failures"], frame.attrs["folds_run"] = failures, len(jobs)
    return frame
