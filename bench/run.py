"""Benchmark: N synthetic stations through the whole pipeline, and ratingcurve side by side.

    .venv/bin/python bench/run.py [--stations 500] [--cores 2] [--ratingcurve 5] [--no-ratingcurve-loo] [--warm]

Generates N stations (ratingflow.synthetic), runs ``snakemake --cores 2`` on them from a cold JAX
compilation cache, and prints stations per minute, wall time per stage (from Snakemake's
``benchmark:`` files), how busy the cores were, peak RSS per job, the share of stations passing the
diagnostics gate, the time of an incremental run after one new gauging, and, in the same run, USGS ratingcurve 1.1.0
(``PowerLawRating(segments=1)``, ``method='nuts'``, its defaults; installed from PyPI into its own
virtual environment) on some of the same stations, with the per-station time ratio. With ``--warm``, every station
again with the compilation cache the runs left.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ratingcurve_env import ratingcurve_env  # bench/ratingcurve_env.py (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["clean", "periods", "prior_check", "fit", "summarise", "discharge", "report"]


def snakemake(work: Path, cores: int, *extra) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(work),
           "--cores", str(cores), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def stage_table(work: Path) -> pd.DataFrame:
    rows = []
    for stage in STAGES:
        for tsv in sorted((work / "benchmarks" / stage).glob("*.tsv")):
            b = pd.read_csv(tsv, sep="\t")
            rows.append({"stage": stage, "job": tsv.stem, "seconds": float(b["s"].iloc[-1]),
                         "max_rss_mb": float(pd.to_numeric(b["max_rss"], errors="coerce").iloc[-1])})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ratingcurve", type=int, default=5, help="stations for ratingcurve (0: skip)")
    parser.add_argument("--work", default=str(ROOT / "bench" / "work"))
    parser.add_argument("--ratingcurve-loo", action=argparse.BooleanOptionalAction, default=True,
                        help="also ratingcurve's segments 1-3 chosen by its own PSIS-LOO (about 40 minutes for 5 "
                             "stations on 2 cores); --no-ratingcurve-loo: its 1-segment fit only")
    parser.add_argument("--rc-venv", default=str(ROOT / "bench" / ".venv-ratingcurve"))
    parser.add_argument("--candidates", default="",
                        help="candidate models, comma-separated (default: the config's); e.g. seg1 to measure the "
                             "incremental run of a large workflow without waiting for its segmented fits")
    parser.add_argument("--segment-offsets", choices=("true", "false"), default="",
                        help="override the config's models.segment_offsets (each control its own offset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, a dotted key and a YAML value, e.g. sampler.num_samples=500 "
                             "(repeatable)")
    parser.add_argument("--warm", action="store_true",
                        help="after the incremental run, run every station again from scratch with the compilation "
                             "cache the runs left (results, logs, benchmarks and Snakemake's metadata removed): what a "
                             "machine that has run the pipeline before pays")
    args = parser.parse_args(argv)

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    from ratingflow.synthetic import generate

    sheet, truth = generate(args.stations, work, args.seed)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["jax"]["compilation_cache"] = str(work / ".cache" / "jax")  # cold: compilation is included
    if args.candidates:
        config["models"]["candidates"] = args.candidates.split(",")
    if args.segment_offsets:
        config["models"]["segment_offsets"] = args.segment_offsets == "true"
    for item in args.set:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        node = config
        for part in path:
            node = node[part]
        if last not in node:
            parser.error(f"--set {item}: the config has no {key}")
        node[last] = yaml.safe_load(value)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; --cores {args.cores}")
    print(f"{len(sheet)} synthetic stations ({(truth['controls'] == 2).sum()} with two controls), "
          f"{int(truth['n'].sum())} gaugings; sampler {config['sampler']}; batch_size {config['batch_size']}")
    wall, proc = snakemake(work, args.cores)
    if proc.returncode:
        print(proc.stderr[-4000:])
        return 1
    stations = pd.read_csv(work / "results" / "stations.csv")
    per_stage = run_report(work, wall, args.cores, len(sheet), "end to end (clean -> report)", "full run")
    fit_seconds = per_stage.loc["fit", "job_seconds"]
    passed = stations["diagnostics_passed"].astype(str) == "True"
    strict = (stations["rhat_max"] <= 1.01) & (stations["ess_bulk_min"] >= 400) & (stations["divergences"] == 0)
    print(f"\ndiagnostics gate (config thresholds) passed: {passed.mean():.1%}; "
          f"R-hat <= 1.01, bulk ESS >= 400, no divergences: {strict.mean():.1%}")
    failing = stations.loc[~passed, ["station_id", "flags"]]
    if len(failing):
        print(failing.head(10).to_string(index=False))

    # incremental: one new gauging at one station
    station = sheet.iloc[len(sheet) // 2]
    raw = work / "data" / "raw" / station["file"]
    last = pd.read_csv(raw).iloc[-1]
    with open(raw, "a") as fh:
        fh.write(f"2026-11-25T12:00,{last['stage']},{last['q'] * 1.01:.5g},{last['q_sigma']}\n")
    inc_start = time.time()
    inc_wall, proc = snakemake(work, args.cores)
    ran = [line for line in proc.stderr.splitlines() if line.startswith("localrule ") or line.startswith("rule ")]
    print(f"\nincremental run after one new gauging at {station['station_id']}: {inc_wall:.1f} s wall, "
          f"{len(ran)} jobs ({', '.join(sorted({r.split()[1].rstrip(':') for r in ran}))})")
    print(cache_lines(work, "incremental run", inc_start))
    inc_jobs = [(tsv.parent.name, tsv.stem, float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]))
                for tsv in sorted((work / "benchmarks").rglob("*.tsv")) if tsv.stat().st_mtime >= inc_start]
    print("incremental run, job seconds: " + ", ".join(f"{stage}/{job} {sec:.2f}" for stage, job, sec in inc_jobs))
    reused = sum(log.read_text().count(" reused") for log in (work / "logs").rglob("*.log")
                 if log.stat().st_mtime >= inc_start)
    print(f"stations reused (published outputs linked) in the incremental run's jobs: {reused}")

    if args.warm:
        # a scheduled run on a machine that has run the pipeline before: every program is in the cache
        for folder in ("results", "logs", "benchmarks", ".snakemake"):
            shutil.rmtree(work / folder, ignore_errors=True)
        warm_start = time.time()
        warm_wall, proc = snakemake(work, args.cores)
        if proc.returncode:
            print(proc.stderr[-4000:])
            return 1
        run_report(work, warm_wall, args.cores, len(sheet),
                   "warm run (the same stations again, every output removed, the compilation cache kept)",
                   "warm run", warm_start)

    if args.ratingcurve:
        python = ratingcurve_env(Path(args.rc_venv))
        files = [str(work / "data" / "raw" / f) for f in sheet["file"].iloc[: 4 * args.ratingcurve]]
        ours_fit, ours_e2e = fit_seconds / len(sheet), wall / len(sheet)
        variants = [("PowerLawRating(segments=1)", []),
                    ("segments 1, 2, 3 each fitted, chosen by its PSIS-LOO", ["--segments", "1,2,3"])]
        for label, extra in variants[: 2 if args.ratingcurve_loo else 1]:
            start = time.perf_counter()
            out = subprocess.run([str(python), str(ROOT / "bench" / "ratingcurve_fit.py"), "--max-ok",
                                  str(args.ratingcurve), *extra, *files], capture_output=True, text=True)
            rc_wall = time.perf_counter() - start
            results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            fits = [r for r in results if "seconds" in r]
            for r in results:
                if "error" in r:
                    print(f"ratingcurve ({label}) could not fit {Path(r['file']).stem}: {r['error']}")
            if not fits:
                print(out.stderr[-3000:])
                continue
            rc_per_station = sum(f["seconds"] for f in fits) / len(fits)
            print(f"\nratingcurve 1.1.0, {label}, method='nuts', defaults, {len(fits)} stations: "
                  f"{', '.join('%.1f' % f['seconds'] for f in fits)} s (process {rc_wall:.0f} s)")
            print(f"  per station: ratingcurve {rc_per_station:.1f} s; ratingflow fit stage {ours_fit:.3f} s "
                  f"(job seconds / stations), end to end {ours_e2e:.3f} s (wall / stations)")
            print(f"  throughput ratio: {rc_per_station / ours_fit:.0f}x (fit stage), "
                  f"{rc_per_station / ours_e2e:.0f}x (whole pipeline, wall)")
    return 0


def run_report(work: Path, wall: float, cores: int, n_stations: int, title: str, label: str,
               since: float = 0.0) -> pd.DataFrame:
    """Print a whole run's wall, its job seconds and peak RSS per stage (Snakemake's ``benchmark:`` files), how busy
    the cores were, the prior check's and summarise's job seconds per station and the programs made
    (:func:`cache_lines`); returns the per-stage table."""
    jobs = stage_table(work)
    print(f"\n{title}: {wall:.1f} s wall, {n_stations / wall * 60:.0f} stations per minute")
    per_stage = jobs.groupby("stage", sort=False).agg(jobs=("job", "size"), job_seconds=("seconds", "sum"),
                                                       max_rss_mb=("max_rss_mb", "max"))
    per_stage["share"] = per_stage["job_seconds"] / per_stage["job_seconds"].sum()
    print("\nper stage (job seconds summed over jobs; they run --cores at a time):")
    print(per_stage.round({"job_seconds": 1, "max_rss_mb": 0, "share": 3}).to_string())
    print(f"peak RSS of any job: {jobs['max_rss_mb'].max():.0f} MB")
    print(f"cores busy: {per_stage['job_seconds'].sum() / (wall * cores):.0%} "
          f"(job seconds of every stage / (wall x {cores} cores))")
    for stage in ("prior_check", "summarise"):
        if stage in per_stage.index:
            print(f"{stage}: {per_stage.loc[stage, 'job_seconds'] / n_stations:.3f} job-s per station")
    print(cache_lines(work, label, since))
    print(fit_parts(work, since))
    return per_stage


#: the fit log's lines that start each part of a fit job (``ratingflow.fit`` and ``ratingflow.choice``), in the order
#: the parts are printed
FIT_PARTS = (("candidate models: sampling", "first round"),
             ("seg2 fitted in the BaRatin form", "own-offsets round"),
             ("failed the diagnostics gate: fitted again", "retries"),
             ("with rating periods", "rating periods"))


def fit_parts(work: Path, since: float = 0.0) -> str:
    """The fit jobs' seconds by part (the first round of every station's candidates, the own-offsets round's BaRatin
    fits, the retries, rating periods), each from the timestamp of the log line that starts it to the next such line or
    the job's "sampled in" line, summed over the fit logs written after ``since``; with the stations each part fitted.
    A job that stopped before that line (a crash, a kill) ends its last part at its log's last write. The timestamps
    have whole seconds."""
    import datetime as dt
    import re

    seconds: dict[str, float] = {}
    stations: dict[str, int] = {}
    for log in sorted((work / "logs" / "fit").glob("*.log")):
        if log.stat().st_mtime < since:
            continue
        events = []
        for line in log.read_text().splitlines():
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\d+) (.*)", line)
            if not m:
                continue
            part = next((name for key, name in FIT_PARTS if key in m.group(3)),
                        "end" if " sampled in " in m.group(3) else None)
            if part:
                events.append((dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ"), part, int(m.group(2))))
        if events and events[-1][1] != "end":
            last_write = dt.datetime.fromtimestamp(log.stat().st_mtime, dt.timezone.utc).replace(tzinfo=None)
            events.append((last_write, "end", 0))
        for (start, part, n), (end, _, _) in zip(events, events[1:]):
            seconds[part] = seconds.get(part, 0.0) + (end - start).total_seconds()
            stations[part] = stations.get(part, 0) + n
    parts = [f"{name} {seconds[name]:.0f} ({stations[name]} stations)" for _, name in FIT_PARTS if name in seconds]
    return "fit job-s by part (from the fit logs' timestamps): " + (", ".join(parts) or "none logged")


def cache_lines(work: Path, label: str, since: float = 0.0) -> str:
    """Persistent-cache hits and misses, and the seconds spent making programs (tracing, lowering, compiling and
    loading compiled programs from the cache), summed over the logs of the jobs that ran after ``since``."""
    import re

    hits = misses = 0
    seconds: dict[str, float] = {}
    for log in (p for p in (work / "logs").rglob("*.log") if p.stat().st_mtime >= since):
        text = log.read_text()
        for m in re.finditer(r"cache: (\d+) hit\(s\), (\d+) miss", text):
            hits, misses = hits + int(m.group(1)), misses + int(m.group(2))
        for m in re.finditer(r"seconds making programs: ([^\n]*)", text):
            for kind, value in re.findall(r"([a-z ]+?) ([0-9.]+)(?:,|$)", m.group(1)):
                seconds[kind.strip()] = seconds.get(kind.strip(), 0.0) + float(value)
    made = ", ".join(f"{kind} {value:.1f}" for kind, value in seconds.items()) or "not logged"
    return (f"{label}: jax persistent compilation cache {hits} hit(s), {misses} miss(es) (programs compiled); "
            f"job-s making programs: {made}")


if __name__ == "__main__":
    sys.exit(main())
