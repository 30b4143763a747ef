"""Benchmark: how long ``snakemake -n`` takes to build its DAG for many stations.

    .venv/bin/python bench/dag.py [--stations 10000] [--repeat 3]

Generates N synthetic stations (ratingflow.synthetic) with the default config and prints the wall time of
a dry run (process start, loading and validating the sheet, batching, the DAG) and its job count. The
target (issue 13) is at most 10 s for 10 000 stations on the 2-core development machine.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ratingflow.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default="", help="project folder (default: a temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="ratingflow-dag-"))
    start = time.perf_counter()
    generate(args.stations, work, seed=1)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    print(f"{args.stations} synthetic stations written to {work} in {time.perf_counter() - start:.1f} s")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(work), "-n",
           "--quiet", "rules"]
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if run.returncode:
            print(run.stderr[-3000:])
            return 1
    total = [line for line in run.stdout.splitlines() if line.startswith("total")]
    print(f"snakemake -n, {args.stations} stations: {min(times):.1f} s (best of {args.repeat}; all: "
          + ", ".join(f"{t:.1f}" for t in times) + f" s); jobs: {total[0].split()[-1] if total else '?'}")
    if not args.work:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
