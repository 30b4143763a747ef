"""The BaRatin form where the own-offsets check flags a one-h0 fit: what it would cost and give. Prints figures,
asserts nothing.

``.venv/bin/python bench/offsets_flagged.py [--points docs/validation/simulation_points.csv]``

Takes the coverage study's simulated stations whose chosen one-h0 seg2 fit the summary flags (``own_offsets_z``
above :data:`ratingflow.plausibility.OWN_OFFSETS_Z`), draws them again from the study's seed, fits seg2 in the BaRatin
form (each control its own zero-flow stage) with the config's sampler settings for that form (``sampler.offsets``),
and prints the wall time, how many fits converged (R-hat <= 1.01, no divergence), and how often the 90 % and 50 %
curve HPDI hold the true curve at the study's five stages, against the one-h0 fits of the study on the same stations.
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
    from ratingflow.posterior import fit_convergence
    from ratingflow.sampler import SamplerSettings
    from ratingflow.synthetic import simulated

    seed = int(config["seed"])
    rows = pd.read_csv(args.points)
    flagged = set(rows.loc[(rows["own_offsets_z"] > OWN_OFFSETS_Z) & (rows["model"] == "seg2"), "station"])
    n = int(rows["station"].nunique())
    every, truth_of = simulated(np.random.default_rng(seed), n, "sim")  # as the study drew them
    truths = {st.station_id: truth for st, truth in zip(every, truth_of)}
    stations = [st for st in every if st.station_id in flagged]
    models = ModelSettings.from_config({**config["models"], "candidates": ["seg2"], "segment_offsets": True,
                                        "screen": None})
    fitter = Fitter(models, SamplerSettings.from_config(config["sampler"]), Priors.from_config(config.get("priors")))
    start = time.perf_counter()
    fits = fitter.fit(stations, seed)
    wall = time.perf_counter() - start
    out = []
    for st, (_, fit) in zip(stations, fits):
        stage = st.stage.min() + np.array(STAGE_FRACTIONS) * np.ptp(st.stage)
        log_curve, _, _ = fitter.predictive(fit, stage, np.full(len(stage), 0.05), station_keys(seed, st.station_id)["predict"])
        true = np.log(truths[st.station_id].discharge(stage))
        conv = fit_convergence(fit)
        for j in range(len(stage)):
            row = {"station": st.station_id, "converged": conv["rhat_max"] <= 1.01 and conv["divergences"] == 0}
            for prob in (0.9, 0.5):
                lo, hi = hpdi(log_curve[:, j], prob)
                row[f"curve{round(prob * 100)}"] = bool(lo <= true[j] <= hi)
            out.append(row)
    d = pd.DataFrame(out)
    one_h0 = rows[rows["station"].isin(flagged)]
    converged = d.groupby("station")["converged"].first()
    print(f"{len(stations)} flagged stations (own-offsets check > {OWN_OFFSETS_Z:g} SE, one-h0 seg2 chosen); the BaRatin "
          f"form's seg2 with its settings: {wall:.0f} s wall on {args.threads} thread(s); converged {converged.sum()} "
          f"of {len(converged)}")
    print(f"true curve in the 90 % / 50 % HPDI: BaRatin form {d['curve90'].mean():.3f} / {d['curve50'].mean():.3f}; "
          f"its converged fits {d.loc[d['converged'], 'curve90'].mean():.3f} / {d.loc[d['converged'], 'curve50'].mean():.3f}; "
          f"one h0 (the study) {one_h0['curve90'].mean():.3f} / {one_h0['curve50'].mean():.3f} ({len(d)} points)")


if __name__ == "__main__":
    main()
