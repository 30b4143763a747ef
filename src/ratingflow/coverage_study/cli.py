"""Command line of the coverage study: ``python -m ratingflow.coverage_study --config CONFIG --out OUT [...]``.

Every path comes from the command line. The parts and how each is skipped:

1. simulation: ``--stations N`` synthetic stations; ``--stations 0`` skips it;
2. held-out: the real stations of ``--real-sheet`` (files under ``--real-dir``, default the sheet's folder);
   no sheet, or ``--skip-heldout``, skips it;
3. peer: ``--ratingcurve-python`` (an environment with ratingcurve==1.1.0) runs ``--ratingcurve-script`` on
   the held-out folds; without it, or without the held-out part, it is skipped.

Each part is saved under OUT/validation as soon as it is done, and ``--reuse`` takes a saved part instead of
running it again. The report (OUT/validation.md) is written with whatever parts ran.
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import pandas as pd


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ratingflow.coverage_study",
                                description="The coverage study: are the rating curve's bands right?",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--config", required=True, help="the pipeline's config (seed, sampler, models, priors)")
    p.add_argument("--out", required=True, help="folder for validation.md and validation/")
    # 1 000: the 50 % band's target is 47-53 %, and over 500 stations its 95 % interval (stations resampled) is
    # +-2.5 points wide; the first 500 of 1 000 are the 500 of --stations 500
    p.add_argument("--stations", type=int, default=1000, help="synthetic stations (0: skip the simulation)")
    p.add_argument("--real-sheet", help="station sheet of the real stations (none: skip the held-out part)")
    p.add_argument("--real-dir", help="folder the sheet's file paths are relative to (default: the sheet's folder)")
    p.add_argument("--skip-heldout", action="store_true", help="skip the held-out part (and so the peer)")
    p.add_argument("--real", type=int, default=0, help="use only the first N real stations (0: all)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--candidates", default="", help="candidate models, comma-separated (default: the config's)")
    p.add_argument("--segment-offsets", choices=("true", "false"), default="",
                   help="override the config's models.segment_offsets")
    p.add_argument("--transition", type=float, default=None, help="override the config's models.transition")
    p.add_argument("--seed", type=int, default=None,
                   help="override the config's seed: other synthetic stations, other folds, other draws")
    p.add_argument("--ratingcurve-python",
                   help="python of an environment with ratingcurve==1.1.0 (none: skip the peer)")
    p.add_argument("--ratingcurve-script", help="the peer's script (the repository's bench/ratingcurve_cv.py)")
    p.add_argument("--findings", help="hand-written findings file the report links to (none: no link)")
    p.add_argument("--warmup", type=int, default=0, help="override the config's warm-up (0: keep)")
    p.add_argument("--samples", type=int, default=0, help="override the config's draws (0: keep)")
    p.add_argument("--jax-cache", default=None,
                   help="JAX compilation cache folder (default: the config's jax.compilation_cache, relative to the "
                        "current folder; '' disables it)")
    p.add_argument("--reuse", action="store_true",
                   help="take the parts already saved under OUT/validation instead of running them again")
    return p


def _run_or_reuse(reuse: bool, rows_csv: Path, side_json: Path | None, run, timings: dict, label: str):
    """A part's rows and its JSON side data: read back with ``--reuse`` where saved, else run (timed) and saved.
    A part's wall time is kept next to it (``timings.json``), so that a report made with ``--reuse`` states it."""
    saved_timings = rows_csv.parent / "timings.json"
    kept = json.loads(saved_timings.read_text()) if saved_timings.exists() else {}
    if reuse and rows_csv.exists() and (side_json is None or side_json.exists()):
        for name, seconds in kept.items():  # the peer's label may say that its folds came from an earlier run
            if name == label or name.startswith(label + ", "):
                timings[name] = seconds
        return pd.read_csv(rows_csv), (json.loads(side_json.read_text()) if side_json else None)
    start = time.perf_counter()
    rows, side = run()
    timings[label] = time.perf_counter() - start
    saved_timings.write_text(json.dumps({**kept, label: timings[label]}, indent=1))
    rows.to_csv(rows_csv, index=False)
    if side_json is not None:
        side_json.write_text(json.dumps(side))
    return rows, side


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.ratingcurve_python and not args.ratingcurve_script:
        p.error("--ratingcurve-python needs --ratingcurve-script")
    import yaml

    from ..runtime import configure_jax

    cfg = yaml.safe_load(Path(args.config).read_text())
    jax_cfg = cfg.get("jax") or {}
    cache = args.jax_cache if args.jax_cache is not None else jax_cfg.get("compilation_cache") or ""
    # before anything imports JAX; one thread, as the pipeline's fit jobs (and ratingflow.importance.runs_here)
    configure_jax(1, cache or None, jax_cfg.get("device", "cpu"))

    from ..candidates import ModelSettings, Priors
    from ..sampler import SamplerSettings
    from . import study
    from .peer import run_peer
    from .report import write_report

    sampler = dict(cfg["sampler"])
    sampler.update({k: v for k, v in (("num_warmup", args.warmup), ("num_samples", args.samples)) if v})
    models_cfg = dict(cfg["models"])
    if args.candidates:
        models_cfg["candidates"] = args.candidates.split(",")
    if args.segment_offsets:
        models_cfg["segment_offsets"] = args.segment_offsets == "true"
    if args.transition is not None:
        models_cfg["transition"] = args.transition
    models = ModelSettings.from_config(models_cfg)

    @functools.cache
    def fitter() -> study.Fitter:  # made on first use: a fully reused run fits nothing
        return study.Fitter(models, SamplerSettings.from_config(sampler), Priors.from_config(cfg.get("priors")),
                            cfg.get("diagnostics"))

    seed = int(cfg["seed"]) if args.seed is None else args.seed
    data = Path(args.out) / "validation"
    data.mkdir(parents=True, exist_ok=True)
    timings, reasons = {}, {}
    sim_rows = heldout = peer = None
    stations, left_out = [], []

    if args.stations > 0:
        sim_rows, _ = _run_or_reuse(args.reuse, data / "simulation_points.csv", None,
                                    lambda: (study.simulate(args.stations, seed, fitter()), None),
                                    timings, "simulation")
        if "own_offsets_z" not in sim_rows:  # saved before the check existed: the stations are drawn again (no fit)
            stations_n = int(sim_rows["station"].nunique())
            sim_rows = study.own_offsets_column(sim_rows, study.simulated_stations(stations_n, seed), models)
            sim_rows.to_csv(data / "simulation_points.csv", index=False)
    else:
        reasons["simulation"] = "--stations 0"

    if args.real_sheet and not args.skip_heldout:
        real_dir = args.real_dir or str(Path(args.real_sheet).parent)
        stations, left_out = study.real_stations(args.real_sheet, real_dir, cfg["default_uncertainty"])
        if args.real:
            stations = stations[: args.real]
        heldout, design = _run_or_reuse(args.reuse, data / "heldout_ratingflow.csv", data / "folds.json",
                                        lambda: study.crossval(stations, args.folds, seed, fitter()),
                                        timings, "held-out (ratingflow)")
    else:
        reasons["held-out"] = "--skip-heldout" if args.real_sheet else "no --real-sheet"

    if heldout is not None and args.ratingcurve_python:
        folds_run = []

        def run():
            rows = run_peer(args.ratingcurve_python, stations, design, data, script=Path(args.ratingcurve_script))
            folds_run.append(rows.attrs["folds_run"])
            return rows, rows.attrs["failures"]

        peer, failures = _run_or_reuse(args.reuse, data / "heldout_ratingcurve.csv", data / "ratingcurve_failures.json",
                                       run, timings, "held-out (ratingcurve)")
        if folds_run == [0]:  # every fold (same station, fold and segments) from an earlier run: no wall time here
            saved = data / "timings.json"
            kept = {k: v for k, v in json.loads(saved.read_text()).items() if k != "held-out (ratingcurve)"}
            label = "held-out (ratingcurve), every fold from an earlier run (ratingcurve_folds.jsonl)"
            timings[label] = kept[label] = timings.pop("held-out (ratingcurve)")
            saved.write_text(json.dumps(kept, indent=1))
        peer.attrs["failures"] = failures
    else:
        reasons["peer"] = "no --ratingcurve-python" if heldout is not None else "needs the held-out part"

    draws = f"{sampler['num_chains']} x ({sampler['num_warmup']} + {sampler['num_samples']})"
    settings = {"seed": seed, "candidates": "/".join(models.candidates), "screen": models.screen,
                "own-offsets round": models.own_offsets, "its seg1 trigger": models.own_offsets_seg1,
                "seg2 in the form without a one-h0 fit above (SE)": models.own_offsets_ahead,
                "stacking mixture": models.stacking,
                "segment offsets": models.segment_offsets,
                "transition": models.transition, "BaRatin form's transition": models.form_transition,
                "chains x (warm-up + draws)": draws}
    if heldout is not None:
        settings["folds"] = args.folds
    report = write_report(Path(args.out), sim_rows, heldout, peer, left_out, settings, timings, reasons=reasons,
                          findings=Path(args.findings) if args.findings else None)
    print(report.split("## 1.")[0])
    return 0
