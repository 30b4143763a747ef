"""Coverage over the synthetic stations of several runs of the study:
``python -m ratingflow.coverage_study.pool DIR [DIR ...]``, each DIR a run's ``validation`` folder (with its
``simulation_points.csv``; runs with other seeds simulate other stations).

One run of 1 000 stations gives the 50 % band's figure a 95 % interval of about +-1.8 points; two runs pooled, about
+-1.3. The stations of each run are told apart by the run's place in the list (their names repeat from run to run), so
that the interval over stations (:func:`ratingflow.coverage_study.study.station_interval`) counts each one once.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .study import simulation_summary


def pooled_points(folders) -> pd.DataFrame:
    """The simulation's points of every run, each station named ``{run}:{station}`` (run: its place in ``folders``)."""
    parts = []
    for i, folder in enumerate(folders):
        rows = pd.read_csv(Path(folder) / "simulation_points.csv")
        parts.append(rows.assign(station=f"{i}:" + rows["station"].astype(str)))
    return pd.concat(parts, ignore_index=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ratingflow.coverage_study.pool", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="the runs' validation folders")
    args = p.parse_args(argv)
    rows = pooled_points(args.folders)
    table = simulation_summary(rows)
    print(f"{rows['station'].nunique()} stations from {len(args.folders)} run(s)\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
