"""The BaRatin form where the own-offsets check flags a one-h0 fit: what it costs and gives. Prints figures,
asserts nothing.

``.venv/bin/python bench/offsets_flagged.py [--points docs/validation/simulation_points.csv]``

Takes the coverage study's simulated stations that the own-offsets check flags (``own_offsets_z`` above
:data:`ratingflow.plausibility.OWN_OFFSETS_Z`, or fitted in the BaRatin form by the fit's own-offsets round:
``own_offsets_form``), draws them again from the study's seed, fits seg2 with one h0 and in the BaRatin form (each
control its own zero-flow stage, with the config's sampler settings for that form, ``sampler.offsets``), and prints
the wall time, how many fits passed the diagnostics gate, and how often the 90 % and 50 % curve HPDI hold the true
curve at the study's five stages, for each form and for the round's rule (the BaRatin fit where it passed the gate).
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", default=str(ROOT / "docs" / "validation" / "simulation_points.csv"))
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    from ratingflow.runtime import configure_jax

    configure_jax(args.threads, (config.get("jax") or {}).get("compilation_cache") or None)
    from numpyro.diagnostics import hpdi

    from ratingflow.candidates import ModelSettings, Priors
    from ratingflow.coverage_study.study import STAGE_FRACTIONS, Fitter
    from ratingflow.keys import station_keys
    from ratingflow.plausibility import OWN_OFFSETS_Z
    from ratingflow.posterior import fit_convergence, gate
    from ratingflow.sampler import SamplerSettings
    from ratingflow.synthetic import simulated

    seed = int(config["seed"])
    rows = pd.read_csv(args.points)
    form = rows["own_offsets_form"].astype(bool) if "own_offsets_form" in rows else False
    flagged = set(rows.loc[((rows["own_offsets_z"] > OWN_OFFSETS_Z) | form) & (rows["model"] == "seg2"), "station"])
    n = int(rows["station"].nunique())
    every, truth_of = simulated(np.random.default_rng(seed), n, "sim")  # as the study drew them
    truths = {st.station_id: truth for st, truth in zip(every, truth_of)}
    stations = [st for st in every if st.station_id in flagged]
    out = []
    for offsets in (False, True):
        models = ModelSettings.from_config({**config["models"], "candidates": ["seg2"], "segment_offsets": offsets,
                                            "screen": None, "own_offsets": None})
        fitter = Fitter(models, SamplerSettings.from_config(config["sampler"]), Priors.from_config(config.get("priors")))
        start = time.perf_counter()
        fits = fitter.fit(stations, seed)
        print(f"seg2 {'in the BaRatin form' if offsets else 'with one h0'}: {time.perf_counter() - start:.0f} s wall "
              f"on {args.threads} thread(s) for {len(stations)} stations, compilation included")
        for st, (_, fit) in zip(stations, fits):
            stage = st.stage.min() + np.array(STAGE_FRACTIONS) * np.ptp(st.stage)
            key = station_keys(seed, st.station_id)["predict"]
            log_curve, _, _ = fitter.predictive(fit, stage, np.full(len(stage), 0.05), key)
            true = np.log(truths[st.station_id].discharge(stage))
            passed = not gate(fit_convergence(fit), config["diagnostics"])[1]
            for j in range(len(stage)):
                row = {"station": st.station_id, "offsets": offsets, "passed": passed}
                for prob in (0.9, 0.5):
                    lo, hi = hpdi(log_curve[:, j], prob)
                    row[f"curve{round(prob * 100)}"] = bool(lo <= true[j] <= hi)
                out.append(row)
    d = pd.DataFrame(out)
    one, own = d[~d["offsets"]].reset_index(drop=True), d[d["offsets"]].reset_index(drop=True)
    rule = own.where(own["passed"], one)
    print(f"{len(stations)} flagged stations (own-offsets check > {OWN_OFFSETS_Z:g} SE); BaRatin fits passing the "
          f"diagnostics gate: {own.groupby('station')['passed'].first().sum()}")
    for label, part in (("one h0", one), ("BaRatin form", own), ("the round (BaRatin where it passed)", rule)):
        print(f"true curve in the 90 % / 50 % HPDI, {label}: {part['curve90'].mean():.3f} / {part['curve50'].mean():.3f}"
              f" ({len(part)} points)")


if __name__ == "__main__":
    main()
