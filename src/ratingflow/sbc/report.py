"""The SBC command and its report: ``python -m ratingflow.sbc --reps 200 --out docs/sbc.md``.

Writes the markdown report, the per-replication ranks (CSV next to it) and ECDF-difference plots with a
simultaneous 99 % band (Dvoretzky-Kiefer-Wolfowitz: every quantity of a calibrated model stays inside it
with probability at least 0.99).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: family-wise level of the report's verdict (after the Bonferroni correction)
ALPHA = 0.01


def band(n: int, alpha: float = ALPHA) -> float:
    """Half-width of the DKW simultaneous band of an ECDF of ``n`` uniform values."""
    return float(np.sqrt(np.log(2 / alpha) / (2 * n)))


#: classes of station size in the coverage table
GAUGING_CLASSES = [0, 30, 60, 120, 10_000]


def central_coverage(rows: pd.DataFrame, levels: int, probs=(0.5, 0.9)) -> pd.DataFrame:
    """Per model: how often the truth of the curve quantities lies inside the central ``prob`` interval of
    the thinned draws (read off the ranks), pooled over the check stages."""
    curve = rows[rows["quantity"].str.startswith("curve@")]
    out = []
    classes = pd.cut(curve["n"], GAUGING_CLASSES)
    for model in dict.fromkeys(curve["model"]):
        for gaugings, part in curve[curve["model"] == model].groupby(classes, observed=True):
            u = (part["rank"].to_numpy() + 0.5) / levels
            row = {"model": model, "gaugings": str(gaugings), "points": len(u)}
            for p in probs:
                row[f"central {round(100 * p)} %"] = float(np.mean(np.abs(u - 0.5) <= p / 2))
            out.append(row)
    return pd.DataFrame(out)


def figure(rows: pd.DataFrame, levels: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(rows["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False, sharey=True)
    grid = np.linspace(0, 1, 201)
    for ax, model in zip(axes[0], models):
        part = rows[rows["model"] == model]
        for name, q in part.groupby("quantity", sort=False):
            u = (q["rank"].to_numpy() + 0.5) / levels
            ecdf = np.searchsorted(np.sort(u), grid, side="right") / len(u)
            ax.plot(grid, ecdf - grid, lw=0.9, label=name)
        half = band(part.groupby("quantity").size().min())
        ax.fill_between(grid, -half, half, color="0.85", zorder=0, label="99 % simultaneous band")
        ax.axhline(0, color="0.4", lw=0.6)
        ax.set_title(f"{model} ({part['station'].nunique()} replications)")
        ax.set_xlabel("normalised rank")
    axes[0][0].set_ylabel("ECDF - uniform")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: what a replication is, per world
WORLDS = {
    "prior": ("Simulation-based calibration of the candidate models",
              "a synthetic station's gauged stages and stated uncertainties, parameters drawn from the model's "
              "prior, gaugings drawn from its likelihood"),
    "generator": ("Ranks of the synthetic generator's truths (is the prior right for the coverage study's world?)",
                  "a one-control station of `ratingflow.synthetic` with 15-40 gaugings: its truth is the generator's, "
                  "not a prior draw, so the ranks are uniform only if the prior suits that world too"),
}


def report(rows: pd.DataFrame, command: str, wall: float, settings: dict, out: Path, world: str = "prior") -> str:
    from .ranks import BINS, THINNED, tests

    levels = THINNED + 1
    table = tests(rows)
    fits = rows.drop_duplicates(["model", "station"])
    diag = fits.groupby("model", sort=False).agg(
        replications=("station", "size"), with_divergences=("divergences", lambda d: int((d > 0).sum())),
        rhat_over_1_01=("rhat_max", lambda r: int((r > 1.01).sum())), seconds=("fit_seconds", "first"),
        **({"by_importance_sampling": ("sampler", lambda s: int((s == "importance").sum()))}
           if "sampler" in fits else {})).reset_index()
    worst = table.loc[table["p_corrected"].idxmin()]
    verdict = "**met**" if worst["p_corrected"] >= ALPHA else "**missed**"
    plot = out.with_suffix(".png")
    figure(rows, levels, plot)
    title, what = WORLDS[world]
    return (
        f"# {title}\n\n"
        f"`{command}` ({wall:.0f} s on {platform.node()}, {os.cpu_count()} CPUs). Written by the command; "
        "re-made by running it again.\n\n"
        f"Each replication: {what}, then fitted as in the pipeline (NUTS; the BaRatin form's one-breakpoint fits by "
        "importance sampling over a breakpoint grid where the run has one JAX thread, NUTS where its weights fail: "
        "`by_importance_sampling` below) "
        f"(sampler {settings['sampler']}, models {settings['models']}). The rank of each true quantity among "
        f"{THINNED} posterior draws spread evenly over the chains is uniform on 0..{THINNED} if the sampler and "
        f"the model code are right{' and the prior suits this world' if world == 'generator' else ''}. Tests per "
        f"quantity: chi-square on {BINS} equal rank bins, and a binomial test of the share outside the central 90 % "
        f"(the tails), Bonferroni over the {2 * len(table)} tests.\n\n"
        f"Verdict: smallest corrected p = {worst['p_corrected']:.3g} ({worst['model']}, {worst['quantity']}); "
        f"target: none below {ALPHA}: {verdict}\n\n"
        f"![ECDF differences]({plot.name})\n\n"
        "## Uniformity tests\n\n" + table.to_markdown(index=False, floatfmt=".3g") + "\n\n"
        "## Fits\n\n" + diag.to_markdown(index=False, floatfmt=".0f") + "\n\n"
        "## Curve bands read off the ranks\n\n"
        "How often the true ln Q of the curve (five stages per replication) lies inside the central 50 % and 90 % "
        f"interval of the posterior draws, when the truth is drawn from {'the prior' if world == 'prior' else 'the generator'}.\n\n"
        + central_coverage(rows, levels).to_markdown(index=False, floatfmt=".3f") + "\n"
    )


def main(argv=None) -> int:
    import yaml

    from ..runtime import configure_jax

    p = argparse.ArgumentParser(prog="python -m ratingflow.sbc", description="Simulation-based calibration.")
    p.add_argument("--reps", type=int, default=200, help="replications per candidate")
    p.add_argument("--candidates", default="", help="comma-separated (default: the config's)")
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--out", default="docs/sbc.md")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="read the ranks saved next to OUT instead of fitting again")
    p.add_argument("--world", choices=("prior", "generator"), default="prior",
                   help="generator: truths from ratingflow.synthetic's one-control stations (seg1 only)")
    p.add_argument("--segment-offsets", choices=("true", "false"), default="",
                   help="override the config's models.segment_offsets")
    p.add_argument("--prior", action="append", default=[], metavar="NAME=VALUE",
                   help="override one of the config's priors (repeatable)")
    args = p.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    configure_jax(args.threads, (config.get("jax") or {}).get("compilation_cache") or None)
    from ..candidates import Candidate, ModelSettings, Priors
    from ..sampler import SamplerSettings
    from .ranks import run

    if args.segment_offsets:
        config["models"]["segment_offsets"] = args.segment_offsets == "true"
    models = ModelSettings.from_config(config["models"])
    names = args.candidates.split(",") if args.candidates else list(models.candidates)
    priors = dict(config.get("priors") or {})
    priors.update({k: float(v) for k, v in (item.split("=", 1) for item in args.prior)})
    out = Path(args.out)
    if args.reuse and out.with_suffix(".csv").exists():
        rows = pd.read_csv(out.with_suffix(".csv"))
        wall = float(rows.groupby("model")["fit_seconds"].first().sum())  # the fits' time when they were run
    else:
        start = time.perf_counter()
        rows = run([Candidate(n) for n in names], args.reps, args.seed, models,
                   SamplerSettings.from_config(config["sampler"]), Priors.from_config(priors), world=args.world)
        wall = time.perf_counter() - start
        rows.to_csv(out.with_suffix(".csv"), index=False)
    command = (f"python -m ratingflow.sbc --reps {rows.groupby('model')['station'].nunique().max()} "
               f"--candidates {','.join(dict.fromkeys(rows['model']))} --seed {args.seed} --out {args.out}"
               + (f" --world {args.world}" if args.world != "prior" else "")
               + (f" --segment-offsets {args.segment_offsets}" if args.segment_offsets else "")
               + (f" --threads {args.threads}" if args.threads != 2 else "")
               + "".join(f" --prior {item}" for item in args.prior))
    text = report(rows, command.strip(), wall, config, out, args.world)
    out.write_text(text)
    print(text)
    return 0
