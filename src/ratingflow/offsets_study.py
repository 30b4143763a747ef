"""Do the BaRatin-form fits (each control with its own offset) converge, and where do they put the breakpoint?

    python -m ratingflow.offsets_study --sheet config/stations.tsv --raw-dir data/raw \\
        --real green_channel,mahurangi,isere --simulated 24 --out docs/offsets.md

Fits seg1 and seg2 with NUTS (the config's sampler) under several model variants, on real stations of a
sheet and on simulated two-control stations whose channel control has its own zero-flow stage
(:mod:`ratingflow.synthetic`). Per station and variant: the seg2 fit's worst R-hat, divergences and bulk
ESS, its breakpoint (median and 90 % HPDI), the sheet's expected breakpoint, and the model PSIS-LOO
chooses. A variant named ``+ sheet`` uses the sheet's control types and breakpoint ranges as priors; the
others ignore them (only stations that have them get that variant).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

#: model variants: (segment_offsets, transition, use the sheet's control types and breakpoint ranges)
#: (a station whose sheet names its control types always gets own offsets, so "one h0 + sheet" is no variant)
VARIANTS = {
    "one h0 (default)": (False, 0.05, False),
    "offsets": (True, 0.05, False),
    "offsets (sharp)": (True, 0.0, False),
    "offsets + sheet": (True, 0.05, True),
}


def real_stations(sheet_path, raw_dir, names: list[str], default_uncertainty: dict):
    """(station, sheet row) of the named stations, cleaned as the pipeline does, with the sheet's hints."""
    from .clean import clean
    from .data import StationData
    from .sheet import load_sheet

    sheet = load_sheet(sheet_path, raw_dir)
    out = []
    for sid in names:
        spec = sheet[sid]
        table = clean(spec, Path(raw_dir) / spec.file, default_uncertainty).clean
        h0 = None if spec.h0_min_m is None else (spec.h0_min_m, spec.h0_max_m)
        out.append((StationData.from_clean(sid, table, h0, spec.breakpoint_ranges(), spec.control_type_list()), spec))
    return out


def simulated_stations(n: int, seed: int):
    """Two-control synthetic stations (their channel control has its own zero flow) and their truths."""
    from . import synthetic

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        st, truth = synthetic.draw_station(rng, f"two{i:03d}", int(rng.integers(20, 121)), two_control_share=1.0)
        out.append((st, truth))
    return out


def run(real, simulated, config: dict, seed: int, log=print, variants=tuple(VARIANTS)) -> pd.DataFrame:
    from .choice import fit_and_choose
    from .candidates import Candidate, ModelSettings, Priors
    from .sampler import SamplerSettings, driver_cache

    settings, priors = SamplerSettings.from_config(config["sampler"]), Priors.from_config(config.get("priors"))
    candidates = [Candidate("seg1"), Candidate("seg2")]
    rows = []
    for variant in variants:
        offsets, transition, hints = VARIANTS[variant]
        models = replace(ModelSettings.from_config(config["models"]), segment_offsets=offsets, transition=transition,
                         candidates=("seg1", "seg2"), screen=None)
        items = [(st, spec.expected_breakpoints(), "") for st, spec in real
                 if not hints or spec.control_type_list() or spec.breakpoint_ranges()]
        items += [(st, [truth.breakpoint], f"true channel offset {truth.h02:.3f} m") for st, truth in simulated
                  if not hints]
        stations = [st if hints else replace(st, control_types=(), break_ranges=None) for st, _, _ in items]
        driver_for = driver_cache(models.structure(candidates), settings, priors)
        start = time.perf_counter()
        choices = fit_and_choose(driver_for, stations, candidates, seed, models.se_factor)
        seconds = time.perf_counter() - start
        log(f"{variant}: {len(stations)} stations in {seconds:.0f} s")
        for st, (_, expected, note), choice in zip(stations, items, choices):
            row = choice.table.set_index("model").loc["seg2"]
            lo, hi = row["breakpoint_1_hpdi90_lower_m"], row["breakpoint_1_hpdi90_upper_m"]
            rows.append({"variant": variant, "station": st.station_id, "gaugings": st.n, "chosen": choice.chosen,
                         "seg2_rhat_max": row["rhat_max"], "seg2_divergences": int(row["divergences"]),
                         "seg2_ess_bulk_min": row["ess_bulk_min"], "breakpoint_median_m": row["breakpoint_1_median_m"],
                         "breakpoint_hpdi90_m": f"{lo:.3f}-{hi:.3f}",
                         "expected_m": ";".join(f"{e:.3f}" for e in expected),
                         "expected_inside": bool(expected) and all(lo <= e <= hi for e in expected),
                         "converged": bool(row["rhat_max"] <= 1.01 and row["divergences"] == 0),
                         "variant_seconds": seconds, "note": note})
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for variant, part in rows.groupby("variant", sort=False):
        sim = part[part["station"].str.startswith("two")]
        real = part[~part["station"].str.startswith("two")]
        out.append({"variant": variant,
                    "real: seg2 converged": f"{real['converged'].sum()}/{len(real)}",
                    "simulated: seg2 converged": f"{sim['converged'].sum()}/{len(sim)}" if len(sim) else "-",
                    "simulated: true breakpoint in 90 % HPDI": f"{sim['expected_inside'].sum()}/{len(sim)}" if len(sim) else "-",
                    "simulated: seg2 chosen": f"{(sim['chosen'] == 'seg2').sum()}/{len(sim)}" if len(sim) else "-",
                    "divergences (all seg2 fits)": int(part["seg2_divergences"].sum()),
                    "wall s (seg1 + seg2, all stations)": round(float(part["variant_seconds"].iloc[0]))})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    import yaml

    from .runtime import configure_jax

    p = argparse.ArgumentParser(prog="python -m ratingflow.offsets_study", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--sheet", default="config/stations.tsv")
    p.add_argument("--raw-dir", default="data/raw")
    p.add_argument("--real", default="green_channel,mahurangi,isere")
    p.add_argument("--simulated", type=int, default=24)
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--out", default="docs/offsets.md")
    p.add_argument("--variants", default=";".join(VARIANTS), help="';'-separated, of: " + "; ".join(VARIANTS))
    args = p.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    configure_jax(2, (config.get("jax") or {}).get("compilation_cache") or None)
    real = real_stations(args.sheet, args.raw_dir, [s for s in args.real.split(",") if s], config["default_uncertainty"])
    start = time.perf_counter()
    rows = run(real, simulated_stations(args.simulated, args.seed), config, args.seed,
               variants=[v.strip() for v in args.variants.split(";") if v.strip()])
    wall = time.perf_counter() - start
    out = Path(args.out)
    rows.to_csv(out.with_suffix(".csv"), index=False)
    table = summary(rows)
    shown = rows[~rows["station"].str.startswith("two")].drop(columns=["note", "variant_seconds"])
    text = ("# Own offsets per control (the BaRatin form): convergence and breakpoints\n\n"
            f"`python -m ratingflow.offsets_study {' '.join(argv if argv is not None else os.sys.argv[1:])}` "
            f"({wall:.0f} s on {platform.node()}, {os.cpu_count()} CPUs; sampler {config['sampler']}). "
            f"Per-station rows: `{out.with_suffix('.csv').name}`. Converged: R-hat <= 1.01 and no divergence.\n\n"
            + table.to_markdown(index=False) + "\n\n## Real stations\n\n" + shown.to_markdown(index=False, floatfmt=".3f")
            + "\n")
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
