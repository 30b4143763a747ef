"""Validation: are the bands right? Coverage on simulated truth, held-out real gaugings, and a peer.

1. Simulation: synthetic stations (:mod:`ratingflow.synthetic`: one and two controls, gauging noise
   2-8 %) fitted with model choice as in the pipeline. At five stages per station (10, 30, 50, 70 and
   90 % of the gauged stage range): is the true curve inside the 50 / 90 / 95 % curve HPDI, is a fresh
   synthetic gauging inside the 90 % predictive band, and the bias of the median curve.
2. Held-out gaugings: every real station, K-fold cross-validation (folds drawn per station from the
   seed). Coverage of the held-out gaugings by the 90 % predictive band (a gauging with its own stated
   uncertainty), by stage third of the station's gauged range, and the log predictive density of ln Q
   per held-out gauging.
3. Peer: ``ratingcurve==1.1.0`` on the same folds, in its own virtual environment
   (``bench/ratingcurve_cv.py``), with the segment count our model choice picked on that fold.

Binomial intervals are Wilson score intervals. They treat points as independent; points of one station
are not quite (they share its posterior), so the intervals are somewhat too narrow.

``python -m ratingflow.validation --out docs`` writes ``docs/validation.md``, its figures and
``docs/validation/*.csv``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from numpyro.diagnostics import hpdi

from .choice import compare
from .data import StationData
from .fit import BatchedNUTS, SamplerSettings, candidate_context, candidate_posterior
from .keys import station_keys
from .model import ModelSettings, Priors, residual_sd
from .predict import SAMPLED_SITES, predict

#: where on the gauged stage range the simulation checks the curve
STAGE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
CURVE_PROBS = (0.5, 0.9, 0.95)
#: stations fitted per driver call (bounds memory; stations are still grouped by shape bucket)
CHUNK = 40


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


class Fitter:
    """Fits stations with every candidate and keeps the one PSIS-LOO chooses, as the pipeline does."""

    def __init__(self, models: ModelSettings, settings: SamplerSettings, priors: Priors):
        self.models, self.priors = models, priors
        self.candidates = models.candidate_list()
        self.driver = BatchedNUTS(models.structure(self.candidates), settings, priors)

    def fit(self, stations: list[StationData], seed: int) -> list[tuple[str, object]]:
        """(chosen name, its fit) per station. Stations go to the driver in chunks of one shape
        bucket and (but for the last) one size, so that few programs are compiled."""
        from .data import bucket_size

        groups: dict[int, list[int]] = {}
        for i, st in enumerate(stations):
            groups.setdefault(bucket_size(st.n), []).append(i)
        out: list = [None] * len(stations)
        for members in groups.values():
            for start in range(0, len(members), CHUNK):
                chunk = members[start:start + CHUNK]
                for i, fits in zip(chunk, self.driver.fit([stations[i] for i in chunk], self.candidates, seed)):
                    chosen, _ = compare({k: f.log_likelihood for k, f in fits.items()}, self.models.se_factor)
                    out[i] = (chosen, fits[chosen])
        return out

    def predictive(self, fit, stage: np.ndarray, sd_log: np.ndarray, key):
        """Draws of ln Q of the curve and of a new gauging with uncertainty ``sd_log`` at ``stage``
        (absolute, m), each (draws, len(stage)); and each draw's SD of a gauging's ln Q."""
        post = candidate_posterior(fit)
        samples = {k: v.reshape((-1,) + v.shape[2:]) for k, v in post.items() if k in SAMPLED_SITES}
        structure = self.models.structure([fit.candidate])
        st = fit.station
        curve, gauging = predict(key, samples, np.asarray(stage) - st.stage_offset, candidate_context(fit), sd_log,
                                 structure, self.priors)
        slope = samples["sigma_slope"][:, None] if "sigma_slope" in samples else None
        spread = residual_sd(samples["sigma"][:, None].astype(np.float64), slope, np.asarray(stage) - st.stage_offset,
                             fit.context, exp=np.exp)
        sd = np.sqrt(spread**2 + np.asarray(sd_log) ** 2)
        tiny = np.finfo(float).tiny
        return np.log(np.maximum(curve, tiny)), np.log(np.maximum(gauging, tiny)), sd


def log_predictive_density(log_curve: np.ndarray, sd: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """ln of the posterior-mean Normal density of the observed ln Q, per point."""
    z = (log_q[None, :] - log_curve) / sd
    log_p = -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    top = log_p.max(axis=0)
    return top + np.log(np.mean(np.exp(log_p - top), axis=0))


# --------------------------------------------------------------------------------------------- simulation

def simulate(n: int, seed: int, fitter: Fitter, log=print) -> pd.DataFrame:
    """One row per (station, check stage) with the truth, the bands and the fresh gauging."""
    from . import synthetic

    rng = np.random.default_rng(seed)
    stations, truths = [], []
    for i in range(n):
        truth = synthetic.draw_truth(rng, f"sim{i:04d}")
        table = synthetic.gaugings(rng, truth, int(rng.integers(15, 201)))
        stations.append(StationData(truth.station_id, table["stage"].to_numpy(), table["q"].to_numpy(),
                                    table["q_sigma"].to_numpy()))
        truths.append(truth)
    start = time.perf_counter()
    fits = fitter.fit(stations, seed)
    log(f"simulation: {n} stations fitted in {time.perf_counter() - start:.0f} s")
    rows = []
    for st, truth, (chosen, fit) in zip(stations, truths, fits):
        lo, hi = st.stage.min(), st.stage.max()
        stage = lo + np.array(STAGE_FRACTIONS) * (hi - lo)
        rel_sd = rng.uniform(0.02, 0.08, len(stage))
        sd_new = np.sqrt(np.log1p(rel_sd**2))
        true_q = truth.discharge(stage)
        fresh = true_q * np.exp(rng.normal(0.0, np.sqrt(truth.sigma**2 + sd_new**2)))
        log_curve, log_gauging, _ = fitter.predictive(fit, stage, sd_new, station_keys(seed, st.station_id)["predict"])
        for j, fraction in enumerate(STAGE_FRACTIONS):
            row = {"station": st.station_id, "controls": truth.controls, "n": st.n, "model": chosen,
                   "fraction": fraction, "stage_m": stage[j], "true_q": true_q[j],
                   "median_q": float(np.exp(np.median(log_curve[:, j]))),
                   "log_bias": float(np.median(log_curve[:, j]) - np.log(true_q[j]))}
            for prob in CURVE_PROBS:
                a, b = hpdi(log_curve[:, j], prob)
                row[f"curve{round(prob * 100)}"] = bool(a <= np.log(true_q[j]) <= b)
            a, b = hpdi(log_gauging[:, j], 0.9)
            row["fresh90"] = bool(a <= np.log(fresh[j]) <= b)
            rows.append(row)
    return pd.DataFrame(rows)


def simulation_summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    groups = [("all stations", rows), ("one control", rows[rows["controls"] == 1]),
              ("two controls", rows[rows["controls"] == 2])]
    for label, part in groups:
        for column, nominal in [(f"curve{round(p * 100)}", p) for p in CURVE_PROBS] + [("fresh90", 0.9)]:
            k, n = int(part[column].sum()), len(part)
            lo, hi = wilson(k, n)
            what = "new gauging, 90 % predictive" if column == "fresh90" else f"true curve, {column[5:]} % HPDI"
            out.append({"stations": label, "check": what, "nominal": nominal, "covered": k, "points": n,
                        "coverage": k / n if n else np.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(out)


def bias_summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for fraction, part in rows.groupby("fraction"):
        x = part["log_bias"].to_numpy()
        se = x.std(ddof=1) / np.sqrt(len(x))
        out.append({"stage (share of gauged range)": fraction, "points": len(x),
                    "median bias, %": 100 * np.expm1(x.mean()), "95 % CI low, %": 100 * np.expm1(x.mean() - 1.96 * se),
                    "95 % CI high, %": 100 * np.expm1(x.mean() + 1.96 * se)})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------- held-out

def real_stations(sheet_path, raw_dir, default_uncertainty: dict, exclude=("simulated_rating",)):
    """Cleaned real stations from a sheet; a station whose gaugings repeat an earlier one's is left out."""
    from .clean import clean
    from .sheet import load_sheet

    sheet = load_sheet(sheet_path, raw_dir)
    stations, seen, skipped = [], {}, []
    for sid, spec in sheet.items():
        if sid in exclude:
            skipped.append((sid, "synthetic"))
            continue
        result = clean(spec, Path(raw_dir) / spec.file, default_uncertainty)
        st = StationData.from_clean(sid, result.clean)
        key = tuple(np.round(np.sort(st.stage * 1e6 + st.discharge), 3))
        if key in seen:
            skipped.append((sid, f"same gaugings as {seen[key]}"))
            continue
        seen[key] = sid
        stations.append(st)
    return stations, skipped


def folds(station: StationData, k: int, seed: int) -> np.ndarray:
    """Fold number of each gauging: a random, balanced assignment from the seed and station id."""
    from .keys import station_seed

    rng = np.random.default_rng(station_seed(seed, station.station_id))
    return rng.permutation(np.arange(station.n) % k)


def stage_third(station: StationData) -> np.ndarray:
    lo, hi = station.stage.min(), station.stage.max()
    return np.minimum((3 * (station.stage - lo) / max(hi - lo, 1e-12)).astype(int), 2)


def subset(station: StationData, keep: np.ndarray, suffix: str) -> StationData:
    return StationData(f"{station.station_id}{suffix}", station.stage[keep], station.discharge[keep],
                       station.discharge_sd[keep], station.h0_range)


def crossval(stations: list[StationData], k: int, seed: int, fitter: Fitter, log=print):
    """Rows per held-out gauging (ours) and the fold design (for the peer)."""
    train, tests, design = [], [], []
    for st in stations:
        fold = folds(st, k, seed)
        third = stage_third(st)
        for f in range(k):
            held = fold == f
            train.append(subset(st, ~held, f"-fold{f}"))
            tests.append((st, f, np.flatnonzero(held), third[held], np.flatnonzero(~held)))
    start = time.perf_counter()
    fits = fitter.fit(train, seed)
    log(f"held-out: {len(train)} folds of {len(stations)} stations fitted in {time.perf_counter() - start:.0f} s")
    rows = []
    for (st, f, idx, thirds, kept), tr, (chosen, fit) in zip(tests, train, fits):
        stage, q, sd = st.stage[idx], st.discharge[idx], st.sd_log[idx]
        log_curve, log_gauging, sd_draws = fitter.predictive(fit, stage, sd, station_keys(seed, tr.station_id)["predict"])
        lo, hi = np.quantile(log_gauging, [0.05, 0.95], axis=0)
        lpd = log_predictive_density(log_curve, sd_draws, np.log(q))
        for j in range(len(idx)):
            rows.append({"station": st.station_id, "fold": f, "gauging": int(idx[j]), "third": int(thirds[j]),
                         "model": chosen, "segments": fit.candidate.n_segments, "inside90": bool(lo[j] <= np.log(q[j]) <= hi[j]),
                         "lpd": float(lpd[j])})
        design.append({"station": st.station_id, "fold": f, "segments": fit.candidate.n_segments,
                       "train": [int(i) for i in kept], "test": [int(i) for i in idx]})
    return pd.DataFrame(rows), design


THIRDS = {0: "low", 1: "middle", 2: "high"}


def heldout_summary(rows: pd.DataFrame, label: str) -> pd.DataFrame:
    out = []
    for third, part in [(THIRDS[t], rows[rows["third"] == t]) for t in range(3)] + [("all", rows)]:
        k, n = int(part["inside90"].sum()), len(part)
        lo, hi = wilson(k, n)
        out.append({"method": label, "stage third": third, "held-out gaugings": n, "coverage90": k / n if n else np.nan,
                    "ci_low": lo, "ci_high": hi, "mean lpd": part["lpd"].mean()})
    return pd.DataFrame(out)


def paired_lpd(ours: pd.DataFrame, peer: pd.DataFrame) -> dict:
    """Mean difference of log predictive density (ours - peer) over the gaugings both predicted, with
    its standard error (as for PSIS-LOO differences: sqrt(n) x SD of the pointwise differences)."""
    both = ours.merge(peer, on=["station", "fold", "gauging"], suffixes=("", "_peer"))
    diff = both["lpd"] - both["lpd_peer"]
    return {"gaugings": len(diff), "mean": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "sum": float(diff.sum()), "sum_se": float(diff.std(ddof=1) * np.sqrt(len(diff)))}


def side_by_side(ours: pd.DataFrame, peer: pd.DataFrame | None) -> pd.DataFrame:
    """Per station: held-out gaugings, 90 % coverage and mean lpd of both methods."""
    agg = {"gaugings": ("inside90", "size"), "coverage90": ("inside90", "mean"), "mean_lpd": ("lpd", "mean")}
    table = ours.groupby("station").agg(**agg)
    if peer is not None and len(peer):
        other = peer.groupby("station").agg(**agg).drop(columns="gaugings")
        table = table.join(other.add_suffix("_ratingcurve"))
        segments = ours.groupby("station")["segments"].agg(lambda s: "/".join(str(v) for v in sorted(set(s))))
        table.insert(1, "segments", segments)
    return table.reset_index()


def ratingcurve_env(path: Path) -> Path:
    """The python of a virtual environment with ratingcurve==1.1.0 (PyPI), created when missing."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ratingcurve==1.1.0"], check=True)
    return python


PEER_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ratingcurve_cv.py"


def run_peer(python: str, stations: list[StationData], design: list[dict], work: Path, log=print,
             script: Path = PEER_SCRIPT) -> pd.DataFrame:
    """ratingcurve on the same folds, in its own interpreter (``bench/ratingcurve_cv.py``).

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
    frame.attrs["failures"] = failures
    return frame


# ------------------------------------------------------------------------------------------- report

def _table(df: pd.DataFrame, digits: int = 3) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}" if np.isfinite(v) else "–"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _error(part: pd.DataFrame, column: str) -> list:
    """Asymmetric error bars from a Wilson interval (never negative where the rate is 0 or 1)."""
    return [np.maximum(part[column] - part["ci_low"], 0), np.maximum(part["ci_high"] - part[column], 0)]


def _plot_coverage(summary: pd.DataFrame, heldout: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sim = summary[summary["stations"] == "all stations"]
    x = np.arange(len(sim))
    axes[0].errorbar(x, sim["coverage"], yerr=_error(sim, "coverage"),
                     fmt="o", color="tab:blue", label="observed (95 % CI)")
    axes[0].plot(x, sim["nominal"], "k_", ms=20, label="nominal")
    axes[0].set_xticks(x, [c.replace(", ", "\n") for c in sim["check"]], fontsize=8)
    axes[0].set_ylabel("coverage")
    axes[0].set_title("simulation", fontsize=10)
    axes[0].legend(fontsize=8)
    for i, (method, part) in enumerate(heldout.groupby("method", sort=False)):
        xs = np.arange(len(part)) + 0.15 * (i - 0.5)
        axes[1].errorbar(xs, part["coverage90"], yerr=_error(part, "coverage90"),
                         fmt="o", label=method)
        axes[1].set_xticks(np.arange(len(part)), part["stage third"])
    axes[1].axhspan(0.85, 0.95, color="0.9", label="target 85-95 %")
    axes[1].axhline(0.9, color="k", lw=0.8)
    axes[1].set_title("held-out real gaugings, 90 % predictive band", fontsize=10)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out: Path, sim_rows, heldout_ours, heldout_peer, skipped, settings: dict, timings: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "validation"
    data.mkdir(exist_ok=True)
    sim = simulation_summary(sim_rows)
    bias = bias_summary(sim_rows)
    held = [heldout_summary(heldout_ours, "ratingflow")]
    if heldout_peer is not None and len(heldout_peer):
        # compare on the gaugings both methods predicted
        both = heldout_ours.merge(heldout_peer[["station", "fold", "gauging"]], on=["station", "fold", "gauging"])
        held.append(heldout_summary(both, "ratingflow (gaugings ratingcurve fitted)"))
        held.append(heldout_summary(heldout_peer, "ratingcurve 1.1.0"))
    held = pd.concat(held, ignore_index=True)
    sim.to_csv(data / "simulation_coverage.csv", index=False)
    held.to_csv(data / "heldout_coverage.csv", index=False)
    _plot_coverage(sim, held, data / "coverage.png")

    all90 = sim[(sim["stations"] == "all stations") & (sim["check"] == "true curve, 90 % HPDI")].iloc[0]
    ours = held[held["method"] == "ratingflow"].set_index("stage third")
    verdicts = [
        f"- Simulation, true curve in the 90 % HPDI: {all90['coverage']:.1%} (target 88-92 %): "
        + ("**met**" if 0.88 <= all90["coverage"] <= 0.92 else "**missed**"),
        *[f"- Held-out, {t} third, 90 % predictive band: {ours.loc[t, 'coverage90']:.1%} (target 85-95 %): "
          + ("**met**" if 0.85 <= ours.loc[t, "coverage90"] <= 0.95 else "**missed**") for t in ("low", "middle", "high")],
    ]
    if heldout_peer is not None and len(heldout_peer):
        peer = held[held["method"] == "ratingcurve 1.1.0"].set_index("stage third")
        same = held[held["method"] == "ratingflow (gaugings ratingcurve fitted)"].set_index("stage third")
        paired = paired_lpd(heldout_ours, heldout_peer)
        verdicts.append(f"- Log predictive density per held-out gauging: ratingflow {same.loc['all', 'mean lpd']:.3f}, "
                        f"ratingcurve {peer.loc['all', 'mean lpd']:.3f} (target: at least ratingcurve's): "
                        + ("**met**" if same.loc["all", "mean lpd"] >= peer.loc["all", "mean lpd"] else "**missed**")
                        + f"; paired difference {paired['mean']:+.3f} ± {paired['se']:.3f} (SE) per gauging, "
                        f"{paired['sum']:+.1f} ± {paired['sum_se']:.1f} summed over {paired['gaugings']} gaugings")
    models = sim_rows.groupby(["controls", "model"])["station"].nunique().unstack(fill_value=0)
    findings = os.path.relpath(Path(__file__).resolve().parents[2] / "docs" / "validation_findings.md", out.resolve())
    text = [
        "# Validation: are the bands right?",
        "",
        "Written by `python -m ratingflow.validation` (see README, \"Validation\"); the numbers below come from "
        "one run and are re-made by running it again with the same settings.",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        ("Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "." if timings
         else "Wall time: parts reused from an earlier run (`--reuse`); see README."),
        "",
        "## Verdicts",
        "",
        *verdicts,
        "",
        f"Why targets are missed, and what is known about it: [validation_findings.md]({findings}) "
        "(written by hand, not by this command).",
        "",
        "![coverage](validation/coverage.png)",
        "",
        f"## 1. Simulation ({sim_rows['station'].nunique()} synthetic stations)",
        "",
        "Stations from `ratingflow.synthetic` (one or two controls; in two-control stations the channel "
        "control has its own offset, "
        + ("as in the fitted model with segment offsets" if settings.get("segment offsets") else
           "so the fitted shared-h0 segmented model is not the true one")
        + "; gauging uncertainty 2-8 % stated per gauging plus a residual of 1-5 %). Five stages per station at 10, 30, "
        "50, 70 and 90 % of the gauged range. 95 % Wilson intervals.",
        "",
        _table(sim),
        "",
        "Models chosen (stations):",
        "",
        _table(models.reset_index().rename(columns={"controls": "true controls"})),
        "",
        "Bias of the median curve, ln(median / truth) averaged over stations:",
        "",
        _table(bias, 2),
        "",
        f"## 2. Held-out real gaugings ({heldout_ours['station'].nunique()} stations, "
        f"{heldout_ours['fold'].nunique()}-fold cross-validation)",
        "",
        "Each held-out gauging is predicted with its own stated uncertainty (equal-tailed 90 % interval of the "
        "posterior predictive draws); `mean lpd` is the mean log predictive density of ln Q per gauging. "
        "Stage thirds split each station's gauged stage range in three equal parts.",
        "",
        _table(held),
        "",
        "Left out: " + ("; ".join(f"{sid} ({why})" for sid, why in skipped) or "none") + ".",
        "",
        "Per station" + (" (ratingflow, and ratingcurve with the same folds and segment counts; `segments`: "
                         "the counts our model choice picked over the folds):" if heldout_peer is not None
                         else " (ratingflow):"),
        "",
        _table(side_by_side(heldout_ours, heldout_peer)),
        "",
    ]
    if heldout_peer is not None:
        failures = heldout_peer.attrs.get("failures", [])
        text += [
            "## 3. ratingcurve 1.1.0 on the same folds",
            "",
            "`PowerLawRating(segments=n)` with the segment count our model choice picked on that fold, "
            "`method='nuts'`, its defaults, in its own virtual environment (`bench/ratingcurve_cv.py`). "
            "Its predictive band for a held-out gauging uses its own likelihood: ratingcurve standardizes "
            "ln Q (z = (ln Q - mean) / sd) and adds the gauging's ln(1 + q_sigma / q) to its residual spread "
            "*on the standardized scale*, so in ln Q the gauging part is multiplied by the sd of ln Q over the "
            "station (often 1-2): its bands widen with the gaugings' uncertainty more than ours do. Stations "
            "whose files state no uncertainty get the config's default, as q_sigma, as for ratingflow.",
            "",
            f"Folds ratingcurve could not fit: {len(failures)}"
            + ("" if not failures else " (" + "; ".join(f"{f['station']} fold {f['fold']}: {f['error']}" for f in failures[:10]) + ")")
            + ". The comparison rows above use only the gaugings both methods predicted.",
            "",
        ]
    report = "\n".join(text)
    (out / "validation.md").write_text(report)
    return report


def main(argv=None) -> None:
    import yaml

    from .runtime import configure_jax

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(root / "config" / "config.yaml"))
    parser.add_argument("--stations", type=int, default=500, help="synthetic stations")
    parser.add_argument("--real-sheet", default=str(root / "tests" / "data" / "gaugings" / "sheet.tsv"))
    parser.add_argument("--real-dir", default=str(root / "tests" / "data" / "gaugings"))
    parser.add_argument("--real", type=int, default=0, help="use only the first N real stations (0: all)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--candidates", default="", help="candidate models, comma-separated (default: the config's)")
    parser.add_argument("--segment-offsets", choices=("true", "false"), default="",
                        help="override the config's models.segment_offsets")
    parser.add_argument("--transition", type=float, default=None, help="override the config's models.transition")
    parser.add_argument("--ratingcurve-venv", default=str(root / "bench" / ".venv-ratingcurve"),
                        help="virtual environment with ratingcurve==1.1.0 (created when missing)")
    parser.add_argument("--skip-ratingcurve", action="store_true", help="no peer comparison")
    parser.add_argument("--warmup", type=int, default=0, help="override the config's warm-up (0: keep)")
    parser.add_argument("--samples", type=int, default=0, help="override the config's draws (0: keep)")
    parser.add_argument("--out", default=str(root / "docs"))
    parser.add_argument("--reuse", action="store_true",
                        help="take the parts already saved under OUT/validation instead of running them again")
    args = parser.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    configure_jax(0, str(root / cfg["jax"].get("compilation_cache", "")) if cfg["jax"].get("compilation_cache") else "",
                  cfg["jax"]["device"])
    sampler = dict(cfg["sampler"])
    if args.warmup:
        sampler["num_warmup"] = args.warmup
    if args.samples:
        sampler["num_samples"] = args.samples
    models_cfg = dict(cfg["models"])
    if args.candidates:
        models_cfg["candidates"] = args.candidates.split(",")
    if args.segment_offsets:
        models_cfg["segment_offsets"] = args.segment_offsets == "true"
    if args.transition is not None:
        models_cfg["transition"] = args.transition
    fitter = Fitter(ModelSettings.from_config(models_cfg), SamplerSettings.from_config(sampler),
                    Priors.from_config(cfg.get("priors")))
    seed = int(cfg["seed"])
    data = Path(args.out) / "validation"
    data.mkdir(parents=True, exist_ok=True)
    timings = {}
    # each part is saved as soon as it is done; --reuse takes a saved part instead of running it again
    sim_csv, ours_csv, peer_csv = (data / f for f in ("simulation_points.csv", "heldout_ratingflow.csv",
                                                      "heldout_ratingcurve.csv"))
    if args.reuse and sim_csv.exists():
        sim_rows = pd.read_csv(sim_csv)
    else:
        start = time.perf_counter()
        sim_rows = simulate(args.stations, seed, fitter)
        timings["simulation"] = time.perf_counter() - start
        sim_rows.to_csv(sim_csv, index=False)
    stations, skipped = real_stations(args.real_sheet, args.real_dir, cfg["default_uncertainty"])
    if args.real:
        stations = stations[: args.real]
    if args.reuse and ours_csv.exists():
        heldout = pd.read_csv(ours_csv)
        design = json.loads((data / "folds.json").read_text())
    else:
        start = time.perf_counter()
        heldout, design = crossval(stations, args.folds, seed, fitter)
        timings["held-out (ratingflow)"] = time.perf_counter() - start
        heldout.to_csv(ours_csv, index=False)
        (data / "folds.json").write_text(json.dumps(design))
    peer = None
    if args.reuse and peer_csv.exists():
        peer = pd.read_csv(peer_csv)
        peer.attrs["failures"] = json.loads((data / "ratingcurve_failures.json").read_text())
    elif not args.skip_ratingcurve:
        start = time.perf_counter()
        python = ratingcurve_env(Path(args.ratingcurve_venv))
        peer = run_peer(str(python), stations, design, data)
        timings["held-out (ratingcurve)"] = time.perf_counter() - start
        peer.to_csv(peer_csv, index=False)
        (data / "ratingcurve_failures.json").write_text(json.dumps(peer.attrs["failures"]))
    settings = {"seed": seed, "candidates": "/".join(fitter.models.candidates),
                "segment offsets": fitter.models.segment_offsets, "transition": fitter.models.transition,
                "chains x (warm-up + draws)": f"{sampler['num_chains']} x ({sampler['num_warmup']} + {sampler['num_samples']})",
                "folds": args.folds}
    report = write_report(Path(args.out), sim_rows, heldout, peer, skipped, settings, timings)
    print(report.split("## 1.")[0])


if __name__ == "__main__":
    sys.exit(main())
